"""Fixtures for the end-to-end suite: real upstream servers, a real gateway, real clients.

Environment:
  GATEHOUSE_BIN          the gateway binary (default .build/debug/gatehouse)
  GATEHOUSE_DEMO_BIN     the demo server binary (default .build/debug/gatehouse-demo-server)
  GATEHOUSE_E2E_DIRECT=1 hand the tests the upstream's own URL instead of the gateway's
                         (validates the tests against the servers; gateway-only tests skip)
  GATEHOUSE_E2E_UPSTREAMS comma-separated subset of: stdio-demo,http-demo,http-python
  GATEHOUSE_E2E_TEST_TIMEOUT seconds before one test is aborted (default 60)
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = REPO / ".build" / "debug"
GATEHOUSE_BIN = Path(os.environ.get("GATEHOUSE_BIN") or BUILD / "gatehouse")
DEMO_BIN = Path(os.environ.get("GATEHOUSE_DEMO_BIN") or BUILD / "gatehouse-demo-server")
PYTHON_UPSTREAM = HERE / "upstream_server.py"
DIRECT = os.environ.get("GATEHOUSE_E2E_DIRECT") == "1"
ALL_KINDS = ("stdio-demo", "http-demo", "http-python")
KINDS = tuple(k.strip() for k in os.environ.get("GATEHOUSE_E2E_UPSTREAMS", ",".join(ALL_KINDS)).split(",") if k.strip())
TEST_TIMEOUT = float(os.environ.get("GATEHOUSE_E2E_TEST_TIMEOUT", "60"))
READY_TIMEOUT = 20.0

# The gateway settings the tests rely on (see the Gateway document in gateway_config()).
ALLOWED_ORIGIN = "http://localhost:3000"
MAX_BODY_BYTES = 65536
MAX_JSON_DEPTH = 64
UPSTREAM_NAME = "demo"


def pytest_configure(config: pytest.Config) -> None:
    unknown = set(KINDS) - set(ALL_KINDS)
    if unknown:
        raise pytest.UsageError(f"GATEHOUSE_E2E_UPSTREAMS: unknown kind(s) {sorted(unknown)}; use {ALL_KINDS}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not DIRECT:
        return
    skip = pytest.mark.skip(reason="gateway-only test (GATEHOUSE_E2E_DIRECT=1)")
    for item in items:
        if item.get_closest_marker("gateway_only"):
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> list[str]:
    target = "upstreams directly (GATEHOUSE_E2E_DIRECT=1)" if DIRECT else f"gateway {GATEHOUSE_BIN}"
    return [f"gatehouse e2e: target={target}; upstream kinds={','.join(KINDS)}"]


# --- a hang guard without plugins ----------------------------------------------------------


class E2ETimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Abort a test that runs longer than GATEHOUSE_E2E_TEST_TIMEOUT (SIGALRM, main thread), or
    than its own `@pytest.mark.timeout_seconds(N)` when it is meant to run longer (the Rego fuzzer)."""
    marker = item.get_closest_marker("timeout_seconds")
    limit = max(TEST_TIMEOUT, float(marker.args[0])) if marker else TEST_TIMEOUT

    def on_alarm(signum: int, frame: Any) -> None:
        raise E2ETimeout(f"{item.nodeid} exceeded {limit:.0f}s (GATEHOUSE_E2E_TEST_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A child process whose stdout+stderr go to a log file we can show on failure."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        try:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group, so stray children can be reaped
            )
        except OSError as error:
            self._log.close()
            pytest.fail(f"cannot start {name} ({argv[0]}): {error}", pytrace=False)

    def output(self, limit: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def describe(self) -> str:
        state = "running" if self.popen.poll() is None else f"exited with code {self.popen.returncode}"
        return f"{self.name} ({state}): {' '.join(self.argv)}\n--- {self.name} output ---\n{self.output()}\n--- end ---"

    def wait_for_line(self, pattern: str, timeout: float = READY_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            match = regex.search(self.output(limit=1 << 20))
            if match:
                return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"{self.name} did not print /{pattern}/ within {timeout:.0f}s\n{self.describe()}", pytrace=False)

    def stop(self) -> None:
        """SIGTERM, up to 5 s grace, then SIGKILL; then reap anything left in its process group."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"gatehouse-e2e: {self.name} did not exit within 5 s of SIGTERM; killing it", file=sys.stderr)
                self.popen.kill()
                self.popen.wait(timeout=5)
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


def wait_http_200(proc: Proc, url: str, timeout: float = READY_TIMEOUT, context: str = "", every_server: bool = False) -> None:
    """Until `url` answers 200. With `every_server` (a /readyz URL): until every server it lists
    is ready, not only one per endpoint — a federated endpoint is ready when one server is, and a
    test that lists every server's tools must not start before the others have connected."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx2.Client(timeout=1.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                break
            try:
                response = http.get(url)
                if response.status_code == 200 and every_server:
                    servers = response.json().get("servers", {})
                    if all(state == "ready" for state in servers.values()):
                        return
                    last = f"HTTP 200 but not every server is ready: {servers}"
                elif response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:300]}"
            except httpx2.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(0.1)
    if proc.popen.poll() is not None:
        why = f"{proc.name} exited (code {proc.popen.returncode}) before {url} answered 200"
    else:
        why = f"{url} did not answer 200 within {timeout:.0f}s (last: {last})"
    pytest.fail(f"{why}\n{context}{proc.describe()}", pytrace=False)


def require_binary(path: Path, what: str) -> None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        message = f"{what} not found at {path}: run `swift build` (or scripts/test), or set the env override"
        if DIRECT:
            pytest.skip(message)
        pytest.fail(message, pytrace=False)


# --- upstreams ------------------------------------------------------------------------------


@dataclass
class Upstream:
    kind: str
    spec: dict[str, Any]  # the MCPServer document's spec, minus timeouts
    url: str | None = None  # for HTTP upstreams: their own MCP endpoint
    proc: Proc | None = None


def start_demo_http(log_dir: Path, name: str = "demo-http") -> Upstream:
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    port = free_port()
    proc = Proc(name, [str(DEMO_BIN), "--http", "--host", "127.0.0.1", "--port", str(port)], log_dir)
    match = proc.wait_for_line(r"listening on (http://\S+)")
    url = match.group(1)
    return Upstream("http-demo", {"http": {"url": url}}, url=url, proc=proc)


def start_python_http(log_dir: Path, name: str = "python-http") -> Upstream:
    port = free_port()
    proc = Proc(name, [sys.executable, str(PYTHON_UPSTREAM), "--host", "127.0.0.1", "--port", str(port)], log_dir)
    match = proc.wait_for_line(r"listening on (http://\S+)")
    url = match.group(1)
    return Upstream("http-python", {"http": {"url": url}}, url=url, proc=proc)


def stdio_demo(workdir: Path) -> Upstream:
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    spec = {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"], "env": {}, "workingDirectory": str(workdir)}}
    return Upstream("stdio-demo", spec)


def start_upstream(kind: str, log_dir: Path) -> Upstream:
    if kind == "stdio-demo":
        return stdio_demo(log_dir)
    if kind == "http-demo":
        return start_demo_http(log_dir)
    return start_python_http(log_dir)


# --- the gateway ----------------------------------------------------------------------------


_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9./_-]*")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return json.dumps(value)  # JSON scalars and {} are valid YAML flow nodes


def _yaml(value: dict[str, Any], indent: int = 0) -> str:
    """A tiny YAML emitter: block mappings, flow sequences, quoted strings where needed."""
    pad = "  " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(f"{pad}{key}:")
            lines.append(_yaml(item, indent + 1))
        else:
            lines.append(f"{pad}{key}: {_scalar(item)}")
    return "\n".join(lines)


def gateway_config(
    port: int,
    upstream_spec: dict[str, Any],
    *,
    upstream_name: str = UPSTREAM_NAME,
    request_seconds: float = 10,
) -> str:
    gateway = {
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "Gateway",
        "metadata": {"name": "e2e"},
        "spec": {
            "listen": {"bind": "127.0.0.1", "port": port},
            "upstream": upstream_name,
            "security": {"allowedOrigins": [ALLOWED_ORIGIN], "allowedHosts": []},
            "limits": {"maxBodyBytes": MAX_BODY_BYTES, "maxJSONDepth": MAX_JSON_DEPTH},
            "sessions": {"idleTimeoutSeconds": 1800},
        },
    }
    server = {
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": upstream_name},
        "spec": {**upstream_spec, "timeouts": {"requestSeconds": request_seconds}},
    }
    return _yaml(gateway) + "\n---\n" + _yaml(server) + "\n"


@dataclass
class Gateway:
    port: int
    config_path: Path
    proc: Proc
    host: str = "127.0.0.1"
    upstream: Upstream | None = None
    extra: list[Proc] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def describe(self) -> str:
        return self.proc.describe()


def start_gateway(
    log_dir: Path,
    upstream_spec: dict[str, Any],
    *,
    name: str = "gateway",
    upstream_name: str = UPSTREAM_NAME,
    request_seconds: float = 10,
    ready_path: str = "/readyz",
) -> Gateway:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    port = free_port()
    config_path = log_dir / f"{name}.yaml"
    config_path.write_text(gateway_config(port, upstream_spec, upstream_name=upstream_name, request_seconds=request_seconds))
    proc = Proc(name, [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], log_dir)
    gateway = Gateway(port=port, config_path=config_path, proc=proc)
    try:
        wait_http_200(proc, f"{gateway.base_url}{ready_path}", context=f"--- {config_path} ---\n{config_path.read_text()}")
    except BaseException:
        proc.stop()
        raise
    return gateway


@pytest.fixture(scope="session")
def log_root() -> Iterator[Path]:
    keep = os.environ.get("GATEHOUSE_E2E_KEEP_LOGS")
    path = Path(tempfile.mkdtemp(prefix="gatehouse-e2e-"))
    yield path
    if not keep:
        for child in sorted(path.rglob("*"), reverse=True):
            child.unlink() if child.is_file() else child.rmdir()
        path.rmdir()


@pytest.fixture(scope="session", params=KINDS)
def upstream_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def upstream(upstream_kind: str, log_root: Path) -> Iterator[Upstream]:
    if DIRECT and upstream_kind == "stdio-demo":
        pytest.skip("stdio upstream has no URL to test directly (GATEHOUSE_E2E_DIRECT=1)")
    log_dir = log_root / upstream_kind
    log_dir.mkdir(exist_ok=True)
    up = start_upstream(upstream_kind, log_dir)
    yield up
    if up.proc:
        up.proc.stop()


@pytest.fixture(scope="session")
def gateway(upstream: Upstream, log_root: Path) -> Iterator[Gateway | None]:
    if DIRECT:
        yield None
        return
    gw = start_gateway(log_root / upstream.kind, upstream.spec)
    gw.upstream = upstream
    yield gw
    gw.proc.stop()


@pytest.fixture
def mcp_url(upstream: Upstream, gateway: Gateway | None) -> str:
    """The MCP endpoint under test: the gateway's, or the upstream's with GATEHOUSE_E2E_DIRECT=1."""
    if gateway is None:
        assert upstream.url
        return upstream.url
    if gateway.proc.popen.poll() is not None:
        pytest.fail(f"the gateway died before this test\n{gateway.describe()}", pytrace=False)
    return gateway.mcp_url


@pytest.fixture
def gw(gateway: Gateway | None) -> Gateway:
    """The gateway itself, for gateway-only tests."""
    if gateway is None:
        pytest.skip("gateway-only test (GATEHOUSE_E2E_DIRECT=1)")
    return gateway


@pytest.fixture
def scratch_dir(log_root: Path, request: pytest.FixtureRequest) -> Path:
    """A per-test directory under the session's log root (for one-off gateways)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    path = log_root / "tests" / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the gateway's (and upstream's) output to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    gateway = funcargs.get("gateway") or funcargs.get("gw")
    if isinstance(gateway, Gateway):
        report.sections.append(("gateway output", gateway.proc.output()))
    upstream = funcargs.get("upstream")
    if isinstance(upstream, Upstream) and upstream.proc is not None:
        report.sections.append((f"upstream {upstream.kind} output", upstream.proc.output(limit=3000)))
