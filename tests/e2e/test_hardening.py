"""Regression tests of the adversarial review's findings: each attack, then the gateway still
serves. (Authentication findings are in test_auth_embedded.py; redaction and connection
deadlines also have unit tests in Tests/GatehouseServerTests/HardeningTests.swift.)

1. quadratic JSON objects: 200,000 keys in a request (anonymous) and 20,000 in an answer
2. quadratic redaction: an echo of 40,000 letters to a caller whose answers are redacted
3. a stdio server that stops reading: other endpoints and /healthz keep answering, its requests
   fail within their timeout, the child is killed and restarted
4. connections: idle, slow-header and slow-body connections are closed; over maxConnections a 503
5. metric labels: thousands of distinct methods and tools do not grow /metrics
6. the admin listener: Host and Origin guards
7. credentials in upstream URLs: hidden in /config, /upstreams and /metrics
8. reload while a server's spec changes under load: no request fails
9. sessions per caller: one caller cannot hold more than maxPerCaller
10. close-delimited SSE answers from an upstream
11. Content-Type, absolute-form targets, the decision log's file mode
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import httpx2
import pytest
import wire
from conftest import DEMO_BIN, GATEHOUSE_BIN, Proc, _yaml, free_port, require_binary, start_demo_http, wait_http_200

pytestmark = pytest.mark.anyio

STUCK_SERVER = """
import json, sys, time
line = sys.stdin.readline()
request = json.loads(line)
answer = {"jsonrpc": "2.0", "id": request["id"], "result": {
    "protocolVersion": request["params"]["protocolVersion"], "capabilities": {"tools": {}},
    "serverInfo": {"name": "stuck", "version": "1"}}}
sys.stdout.write(json.dumps(answer) + "\\n")
sys.stdout.flush()
sys.stdin.readline()  # notifications/initialized
print("stuck: no longer reading", file=sys.stderr, flush=True)
time.sleep(3600)      # never reads stdin again
"""

REDACT_ALL = """package gatehouse

import rego.v1

decision := {"allow": true, "redact": {"detectors": ["email", "card", "phone", "national_id"], "fields": ["ssn"]}}
"""


class Gw:
    def __init__(self, proc: Proc, port: int, admin_port: int | None, config: Path) -> None:
        self.proc, self.port, self.admin_port, self.config = proc, port, admin_port, config

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def alive(self) -> None:
        assert self.proc.popen.poll() is None, f"the gateway died\n{self.proc.describe()}"


def write_config(path: Path, port: int, servers: dict[str, dict[str, Any]], *, spec: dict[str, Any] | None = None,
                 endpoints: list[dict[str, Any]] | None = None) -> None:
    gateway_spec: dict[str, Any] = {"listen": {"bind": "127.0.0.1", "port": port}}
    if endpoints:
        gateway_spec["endpoints"] = endpoints
    else:
        gateway_spec["upstream"] = next(iter(servers))
    gateway_spec.update(spec or {})
    documents = [{"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "hardening"}, "spec": gateway_spec}]
    for name, server in servers.items():
        documents.append({"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": name}, "spec": server})
    path.write_text("\n---\n".join(_yaml(d) for d in documents) + "\n")


@pytest.fixture
def launch(scratch_dir: Path) -> Iterator[Any]:
    started: list[Proc] = []

    def start(servers: dict[str, dict[str, Any]], *, spec: dict[str, Any] | None = None, admin: dict[str, Any] | None = None,
              endpoints: list[dict[str, Any]] | None = None, name: str = "gateway", every_server: bool = True) -> Gw:
        require_binary(GATEHOUSE_BIN, "gatehouse")
        port = free_port()
        admin_port = None
        spec = dict(spec or {})
        if admin is not None:
            admin_port = free_port()
            spec["admin"] = {"listen": {"bind": "127.0.0.1", "port": admin_port}, **admin}
        config = scratch_dir / f"{name}.yaml"
        write_config(config, port, servers, spec=spec, endpoints=endpoints)
        proc = Proc(name, [str(GATEHOUSE_BIN), "serve", "--config", str(config)], scratch_dir)
        started.append(proc)
        wait_http_200(proc, f"http://127.0.0.1:{port}/readyz", context=config.read_text(), every_server=every_server)
        return Gw(proc, port, admin_port, config)

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def demo(scratch_dir: Path) -> Iterator[dict[str, Any]]:
    upstream = start_demo_http(scratch_dir)
    yield upstream.spec | {"timeouts": {"requestSeconds": 10}}
    assert upstream.proc
    upstream.proc.stop()


def stdio_demo() -> dict[str, Any]:
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    return {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"]}, "timeouts": {"requestSeconds": 10}}


async def echo(http: httpx2.AsyncClient, url: str, message: Any) -> wire.Reply:
    return await wire.modern_call(http, url, "tools/call", {"name": "echo", "arguments": {"message": message}})


def succeeded(reply: wire.Reply) -> bool:
    return reply.status == 200 and any(isinstance(m, dict) and "result" in m for m in reply.messages)


async def assert_serving(http: httpx2.AsyncClient, url: str) -> None:
    reply = await echo(http, url, "still here")
    assert reply.status == 200 and reply.result["content"][0]["text"] == "still here", reply.describe()


# --- 1. quadratic JSON objects ---------------------------------------------------------------------


async def test_an_object_of_200000_keys_costs_linear_time(launch: Any, demo: dict[str, Any]) -> None:
    gw = launch({"demo": demo}, spec={"limits": {"maxBodyBytes": 8 << 20}})
    keys = {f"k{i}": i for i in range(200_000)}  # 2.3 MB, under the limit; froze a loop for minutes
    async with wire.client() as http:
        with anyio.fail_after(30):
            started = time.monotonic()
            message = wire.modern_request("tools/call", {"name": "echo", "arguments": {"message": "big", "extra": keys}})
            reply = await wire.post(http, gw.base + "/mcp", message, wire.modern_headers(message))
            took = time.monotonic() - started
            assert reply.status in (200, 400), reply.describe()
            assert took < 15, f"a 200,000-key object took {took:.1f}s"
            # Anonymous: the registration endpoint parses JSON too (when the AS is on); the MCP
            # endpoint is the same parser. Repeated keys are still refused as they were.
            await assert_serving(http, gw.base + "/mcp")
    gw.alive()


# --- 2. quadratic redaction -------------------------------------------------------------------------


async def test_redacting_40000_letters_is_quick(launch: Any, demo: dict[str, Any], scratch_dir: Path) -> None:
    gw = launch({"demo": demo}, spec={"policy": {"rego": {"inline": REDACT_ALL}, "audit": {"sink": "off"}}})
    async with wire.client() as http:
        with anyio.fail_after(30):
            text = "a" * 40_000
            started = time.monotonic()
            reply = await echo(http, gw.base + "/mcp", text)
            took = time.monotonic() - started
            assert reply.status == 200 and reply.result["content"][0]["text"] == text, reply.describe()
            assert took < 5, f"redacting 40,000 letters took {took:.1f}s (12.7 s before)"
            mixed = "mail ann@example.com " * 20_000  # 420 KB: redacted off the event loop
            reply = await echo(http, gw.base + "/mcp", mixed)
            assert reply.status == 200, reply.describe()
            out = reply.result["content"][0]["text"]
            assert "ann@example.com" not in out and out.count("[REDACTED:email]") == 20_000
            await assert_serving(http, gw.base + "/mcp")
    gw.alive()


# --- 3. a stdio server that stops reading -----------------------------------------------------------


async def test_a_stdio_server_that_stops_reading_does_not_freeze_the_gateway(launch: Any, scratch_dir: Path) -> None:
    script = scratch_dir / "stuck.py"
    script.write_text(STUCK_SERVER)
    servers = {
        "stuck": {"stdio": {"command": sys.executable, "args": [str(script)]}, "timeouts": {"requestSeconds": 2}},
        "demo": stdio_demo(),
    }
    gw = launch(servers, endpoints=[{"path": "/stuck", "servers": ["stuck"]}, {"path": "/mcp", "servers": ["demo"]}])
    payload = "x" * 100_000
    results: list[tuple[int, float]] = []

    async def stuck_call(http: httpx2.AsyncClient) -> None:
        started = time.monotonic()
        reply = await echo(http, gw.base + "/stuck", payload)
        results.append((reply.status if succeeded(reply) else -1, time.monotonic() - started))

    async with wire.client() as http:
        with anyio.fail_after(40):
            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(stuck_call, http)
                await anyio.sleep(0.5)
                # Meanwhile the gateway answers everything else at once.
                for _ in range(5):
                    started = time.monotonic()
                    health = await http.get(gw.base + "/healthz")
                    assert health.status_code == 200
                    assert time.monotonic() - started < 1.0, "/healthz waited behind a stuck child"
                    await assert_serving(http, gw.base + "/mcp")
                    await anyio.sleep(0.2)
    assert len(results) == 3
    for status, took in results:
        assert status == -1, "a call to a server that does not read cannot succeed"
        assert took < 10, f"a request to the stuck server took {took:.1f}s (timeout 2 s)"
    # The stuck child was killed and a new one started.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "stdio upstream restarted" not in gw.proc.output(200_000):
        await anyio.sleep(0.2)
    log = gw.proc.output(200_000)
    assert "stopped reading its input" in log, log[-3000:]
    assert "stdio upstream restarted" in log, log[-3000:]
    gw.alive()


# --- 4. connections -----------------------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the peer closes within `seconds` (reads until EOF; an answer before it is fine)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


async def test_idle_slow_header_and_slow_body_connections_are_closed(launch: Any, demo: dict[str, Any]) -> None:
    limits = {"idleTimeoutSeconds": 2, "headerTimeoutSeconds": 1, "bodyTimeoutSeconds": 1}
    gw = launch({"demo": demo}, spec={"limits": limits})
    silent = connect(gw.port)
    assert closed_within(silent, 4.5), "a connection that sends nothing must be closed after idleTimeoutSeconds"
    slow_head = connect(gw.port)
    slow_head.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    assert closed_within(slow_head, 3.0), "a head that never completes must be closed after headerTimeoutSeconds"
    assert time.monotonic() - started < 2.6
    slow_body = connect(gw.port)
    slow_body.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    assert closed_within(slow_body, 3.0), "a body that never completes must be closed after bodyTimeoutSeconds"
    # A long answer (a slow tool, 3 s) is not cut by these deadlines.
    async with wire.client() as http:
        with anyio.fail_after(20):
            reply = await wire.modern_call(http, gw.base + "/mcp", "tools/call", {"name": "slow", "arguments": {"steps": 3, "intervalMs": 1000}})
            assert reply.status == 200 and "done" in reply.result["content"][0]["text"], reply.describe()
    gw.alive()


async def test_connections_over_the_limit_get_503_and_memory_returns(launch: Any, demo: dict[str, Any]) -> None:
    gw = launch({"demo": demo}, spec={"limits": {"maxConnections": 50}})
    held = [connect(gw.port) for _ in range(50)]
    time.sleep(0.3)
    status, response = wire.raw_http("127.0.0.1", gw.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 503 and b"maxConnections" in response, response[:300]
    for sock in held:
        sock.close()
    time.sleep(0.5)
    status, _ = wire.raw_http("127.0.0.1", gw.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status == 200, "after the connections closed, new ones are served again"
    gw.alive()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def test_memory_returns_after_a_connection_flood(launch: Any, demo: dict[str, Any]) -> None:
    gw = launch({"demo": demo})
    async with wire.client() as http:
        await assert_serving(http, gw.base + "/mcp")
    before = rss_kb(gw.proc.popen.pid)
    flood = []
    for _ in range(3):
        for _ in range(1500):
            sock = connect(gw.port)
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 60000\r\n\r\n" + b" " * 30000)
            flood.append(sock)
        time.sleep(0.5)
        peak = rss_kb(gw.proc.popen.pid)
        for sock in flood:
            sock.close()
        flood.clear()
    time.sleep(2)
    after = rss_kb(gw.proc.popen.pid)
    assert after < before + (peak - before) / 2 + 20_000, f"RSS {before} kB before, {peak} kB at the peak, {after} kB after"
    gw.alive()


# --- 5. metric labels -----------------------------------------------------------------------------


async def test_client_chosen_names_do_not_grow_metrics(launch: Any, demo: dict[str, Any]) -> None:
    gw = launch({"demo": demo}, admin={})
    async with wire.client() as http:
        with anyio.fail_after(60):
            for i in range(300):
                method = f"x{i}/" + "m" * 4000
                message = wire.modern_request(method)
                await wire.post(http, gw.base + "/mcp", message, wire.modern_headers(message))
                await echo(http, gw.base + "/mcp", "hi") if i % 100 == 0 else None
                await wire.modern_call(http, gw.base + "/mcp", "tools/call", {"name": f"nope{i}" + "t" * 1000, "arguments": {}})
            metrics = (await http.get(gw.admin + "/metrics")).text
    assert len(metrics) < 200_000, f"/metrics is {len(metrics)} bytes after 600 distinct names"
    assert "mmmm" not in metrics and "tttt" not in metrics
    assert 'mcp_method_name="other"' in metrics
    gw.alive()


# --- 6. admin guards ------------------------------------------------------------------------------


async def test_admin_listener_checks_host_and_origin(launch: Any, demo: dict[str, Any]) -> None:
    gw = launch({"demo": demo}, admin={})
    async with httpx2.AsyncClient(timeout=10, trust_env=False) as http:
        assert (await http.get(gw.admin + "/config")).status_code == 200
        rebound = await http.get(gw.admin + "/config", headers={"Host": "evil.example:9091"})
        assert rebound.status_code == 403 and "allowedHosts" in rebound.text, rebound.text
        assert (await http.get(gw.admin + "/metrics", headers={"Host": "evil.example"})).status_code == 403
        page = await http.post(gw.admin + "/reload", headers={"Origin": "http://evil.example"})
        assert page.status_code == 403 and "allowedOrigins" in page.text, page.text
        own = await http.post(gw.admin + "/reload", headers={"Origin": f"http://127.0.0.1:{gw.admin_port}"})
        assert own.status_code == 403, "no browser origin may reload unless configured"
        assert (await http.post(gw.admin + "/reload")).status_code == 200
    gw.alive()


# --- 7. credentials in URLs -----------------------------------------------------------------------


async def test_upstream_url_credentials_are_never_shown(launch: Any, demo: dict[str, Any]) -> None:
    url = demo["http"]["url"]
    secret_url = url.replace("http://", "http://user:HUNTER2@") + "?api_key=SEKRIT"
    gw = launch({"demo": {**demo, "http": {"url": secret_url}}}, admin={})
    async with httpx2.AsyncClient(timeout=10, trust_env=False) as http:
        for path in ("/config", "/upstreams", "/metrics", "/status"):
            text = (await http.get(gw.admin + path)).text
            assert "HUNTER2" not in text and "SEKRIT" not in text, f"{path} shows the URL's credentials: {text[:2000]}"
        assert "***@" in (await http.get(gw.admin + "/config")).text
    assert "HUNTER2" not in gw.proc.output(200_000) and "SEKRIT" not in gw.proc.output(200_000)


# --- 8. reload while a server changes --------------------------------------------------------------


async def test_reloading_a_changed_server_drops_no_request(launch: Any, demo: dict[str, Any], scratch_dir: Path) -> None:
    gw = launch({"demo": demo})
    failures: list[str] = []
    calls = 0
    stop = False

    async def caller(http: httpx2.AsyncClient) -> None:
        nonlocal calls
        while not stop:
            reply = await echo(http, gw.base + "/mcp", "x")
            calls += 1
            if not succeeded(reply):
                failures.append(reply.describe())

    async with wire.client() as http:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for _ in range(4):
                    group.start_soon(caller, http)
                for round_ in range(8):
                    await anyio.sleep(0.5)
                    # The server's spec changes: a new upstream server replaces the old one.
                    write_config(gw.config, gw.port, {"demo": {**demo, "timeouts": {"requestSeconds": 10 + round_ + 1}}})
                    os.kill(gw.proc.popen.pid, signal.SIGHUP)
                await anyio.sleep(1)
                stop = True
    reloads = gw.proc.output(500_000).count("config reloaded")
    assert reloads >= 4, f"only {reloads} reloads happened\n{gw.proc.output()}"
    assert not failures, f"{len(failures)} of {calls} calls failed during reloads; first: {failures[0]}"
    gw.alive()


# --- 9. sessions per caller ----------------------------------------------------------------------


async def test_one_caller_cannot_exhaust_sessions(launch: Any, demo: dict[str, Any]) -> None:
    """Anonymous callers count by address: 10 sessions from 127.0.0.1 leave it 3 (its longest idle
    ones are ended), and a client on 127.0.0.2 still gets a session (10,000 initialize calls from
    one caller used to fill the table for everyone)."""
    gw = launch({"demo": demo}, spec={"sessions": {"maxPerCaller": 3, "maxSessions": 8}}, admin={})
    url = gw.base + "/mcp"

    async def held() -> int:
        async with httpx2.AsyncClient(timeout=10, trust_env=False) as admin:
            return (await admin.get(gw.admin + "/sessions")).json()["endpoints"]["/mcp"]["sessions"]

    async with wire.client() as http:
        with anyio.fail_after(60):
            sessions = [await wire.open_session(http, url, "2025-11-25") for _ in range(10)]
            assert await held() == 3, "one caller holds at most maxPerCaller sessions"
            newest = await wire.session_call(http, sessions[-1], "tools/call", {"name": "echo", "arguments": {"message": "s"}})
            assert newest.status == 200, newest.describe()
            # Using an ended session's id again (sealed ids can be resumed) still counts against the cap.
            await wire.session_call(http, sessions[0], "ping")
            assert await held() <= 3
    other = httpx2.AsyncClient(timeout=wire.DEFAULT_TIMEOUT, trust_env=False, transport=httpx2.AsyncHTTPTransport(local_address="127.0.0.2"))
    async with other:
        with anyio.fail_after(30):
            session = await wire.open_session(other, url, "2025-11-25")
            reply = await wire.session_call(other, session, "tools/call", {"name": "echo", "arguments": {"message": "other"}})
            assert reply.status == 200 and reply.result["content"][0]["text"] == "other", reply.describe()
    assert await held() <= 4
    gw.alive()


# --- 10. close-delimited SSE ------------------------------------------------------------------------


class CloseDelimitedSSE(threading.Thread):
    """An upstream that answers every POST with SSE and no length, ending the body by closing."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            found = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if not head.startswith(b"POST") or not found:
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            length = int(found.group(1))
            while len(body) < length:
                body += conn.recv(65536)
            message = json.loads(body)
            if "id" not in message:
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            method = message["method"]
            if method == "initialize":
                result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                          "serverInfo": {"name": "close-delimited", "version": "1"}}
            elif method == "tools/list":
                result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
            elif method == "tools/call":
                result = {"content": [{"type": "text", "text": message["params"]["arguments"]["message"]}]}
            else:
                result = {}
            event = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
            conn.sendall(f"event: message\ndata: {event}\n\n".encode())
            try:
                conn.shutdown(socket.SHUT_WR)  # the end of the body
            except OSError:
                pass


async def test_close_delimited_sse_from_an_upstream(launch: Any) -> None:
    upstream = CloseDelimitedSSE()
    upstream.start()
    try:
        gw = launch({"plain": {"http": {"url": f"http://127.0.0.1:{upstream.port}/mcp"}, "timeouts": {"requestSeconds": 5}}})
        async with wire.client() as http:
            with anyio.fail_after(20):
                reply = await echo(http, gw.base + "/mcp", "through a closing stream")
                assert succeeded(reply), reply.describe()
                assert reply.result["content"][0]["text"] == "through a closing stream"
    finally:
        upstream.sock.close()


# --- 11. smaller ones --------------------------------------------------------------------------------


async def test_content_type_absolute_targets_and_the_decision_log_mode(launch: Any, demo: dict[str, Any], scratch_dir: Path) -> None:
    log = scratch_dir / "decisions.log"
    gw = launch({"demo": demo}, spec={"policy": {"rego": {"inline": REDACT_ALL}, "audit": {"sink": "file", "path": str(log)}}})
    message = wire.modern_request("tools/call", {"name": "echo", "arguments": {"message": "m"}})
    body = json.dumps(message).encode()
    headers = wire.modern_headers(message)
    async with httpx2.AsyncClient(timeout=10, trust_env=False) as http:
        for content_type in (None, "application/jsonx", "text/plain", "application/json-seq"):
            sent = {**headers, "Accept": wire.ACCEPT} | ({"Content-Type": content_type} if content_type else {})
            response = await http.post(gw.base + "/mcp", content=body, headers=sent)
            assert response.status_code == 415, f"Content-Type {content_type!r}: {response.status_code} {response.text}"
            assert "application/json" in response.json()["error"]["message"]
        ok = await http.post(gw.base + "/mcp", content=body, headers={**headers, "Accept": wire.ACCEPT, "Content-Type": "application/json; charset=utf-8"})
        assert ok.status_code == 200, ok.text
    head = (f"POST http://evil.example/mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nContent-Type: application/json\r\n"
            f"Accept: {wire.ACCEPT}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    status, response = wire.raw_http("127.0.0.1", gw.port, (head + extra + "\r\n").encode() + body)
    assert status == 403 and b"evil.example" in response, response[:400]
    status, _ = wire.raw_http("127.0.0.1", gw.port, (head.replace("evil.example", f"127.0.0.1:{gw.port}") + extra + "\r\n").encode() + body)
    assert status == 200
    assert log.exists() and stat.S_IMODE(log.stat().st_mode) == 0o600, oct(stat.S_IMODE(log.stat().st_mode))
    gw.alive()


# --- second review: a stdio child that exits leaving a grandchild on its pipes; labels from
# --- an upstream that answers unknown tools with isError --------------------------------------

FORKING_SERVER = """
import json, os, sys, time
def send(o):
    sys.stdout.write(json.dumps(o) + "\\n"); sys.stdout.flush()
for line in sys.stdin:
    m = json.loads(line)
    if m.get("method") == "initialize":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": m["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": {"name": "forking", "version": "1"}}})
    elif m.get("method") == "notifications/initialized":
        print("forking: started", file=sys.stderr, flush=True)
        if os.fork() == 0:
            time.sleep(120); os._exit(0)   # the grandchild keeps stdin and stdout open, never reads
        os._exit(0)                        # the child itself exits
"""


async def test_a_stdio_child_that_exits_behind_a_grandchild_is_restarted(launch: Any, scratch_dir: Path) -> None:
    script = scratch_dir / "forking.py"
    script.write_text(FORKING_SERVER)
    servers = {"forking": {"stdio": {"command": sys.executable, "args": [str(script)]}, "timeouts": {"requestSeconds": 2}}}
    gw = launch(servers)
    try:
        async with wire.client() as http:
            with anyio.fail_after(30):
                reply = await echo(http, gw.base + "/mcp", "anyone there?")
                assert not succeeded(reply), reply.describe()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and gw.proc.output(200_000).count("forking: started") < 2:
            await anyio.sleep(0.2)
        log = gw.proc.output(200_000)
        assert "pipes stayed open" in log and log.count("forking: started") >= 2, log[-3000:]
        gw.alive()
    finally:
        os.system(f"pkill -f {script} 2>/dev/null")


async def test_tool_names_answered_with_iserror_do_not_grow_metrics(launch: Any, scratch_dir: Path) -> None:
    from conftest import start_python_http

    upstream = start_python_http(scratch_dir)  # the official SDK answers unknown tools with isError
    try:
        gw = launch({"py": upstream.spec | {"timeouts": {"requestSeconds": 10}}}, admin={})
        async with wire.client() as http:
            with anyio.fail_after(60):
                for i in range(200):
                    await wire.modern_call(http, gw.base + "/mcp", "tools/call", {"name": f"made-up-{i}-" + "n" * 2000, "arguments": {}})
                metrics = (await http.get(gw.admin + "/metrics")).text
        assert len(metrics) < 100_000 and "made-up" not in metrics, f"/metrics is {len(metrics)} bytes"
        gw.alive()
    finally:
        assert upstream.proc
        upstream.proc.stop()
