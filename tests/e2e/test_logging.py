"""Structured logs and request ids end to end: `gatehouse serve --log-format json` (one JSON object
per stderr line: ts, level, msg, logger, source + metadata) and `X-Request-Id` (a client's plain id
of up to 64 characters of [A-Za-z0-9._-] is echoed, anything else is replaced by 16 hex digits; log
lines written while handling a request carry it as `request_id`).

One gateway (plain HTTP, `--log-format json --log-level debug`, stdout and stderr kept apart) with:
  /mcp    -> the stdio demo server (auth off)
  /locked -> the same server, auth required (no token store: every request is 401)
  /down   -> an HTTP upstream on a closed port (a call logs "upstream failure")
  /slow   -> a second stdio demo server with timeouts.requestSeconds: 1 (a slow call with progress
             times out in the middle of its SSE stream)
and one with the default text format for the request id in text log lines.

Known failures against the current binary are written up in /work/notes/tls-failures.md.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import wire
from conftest import DEMO_BIN, GATEHOUSE_BIN, READY_TIMEOUT, _yaml, free_port, require_binary

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

GENERATED = re.compile(r"[0-9a-f]{16}")
PLAIN = re.compile(r"[A-Za-z0-9._-]{1,64}")
LEVELS = {"trace", "debug", "info", "notice", "warning", "error", "critical"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
BAD_ORIGIN = "http://evil.example"
MAX_BODY = 65536
CALL_TIMEOUT = 20


# --- a gateway whose stderr is kept apart ----------------------------------------------------------


@dataclass
class LogGateway:
    name: str
    dir: Path
    port: int
    config_path: Path
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/mcp") -> str:
        return f"{self.base_url}{path}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def describe(self) -> str:
        state = "running" if self.popen.poll() is None else f"exited with code {self.popen.returncode}"
        err = self.stderr()
        return (f"{self.name} ({state})\n--- stderr (last 6000) ---\n{err[-6000:]}\n--- stdout ---\n{self.stdout()[-2000:]}\n"
                f"--- {self.config_path} ---\n{self.config_path.read_text()}")

    def alive(self) -> None:
        assert self.popen.poll() is None, f"the gateway died\n{self.describe()}"

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stderr line, parsed; a line that is not a JSON object fails the test."""
        lines = []
        for number, raw in enumerate(self.stderr().splitlines(), 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError as error:
                raise AssertionError(f"stderr line {number} is not JSON: {raw!r}") from error
            assert isinstance(value, dict), f"stderr line {number} is not a JSON object: {raw!r}"
            lines.append(value)
        return lines

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.json_lines() if predicate(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self) -> None:
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


def demo_spec(workdir: Path, request_seconds: float) -> dict[str, Any]:
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    return {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"], "env": {}, "workingDirectory": str(workdir)},
            "timeouts": {"requestSeconds": request_seconds}}


def config_text(port: int, work: Path) -> str:
    gateway = {
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "logging-e2e"},
        "spec": {
            "listen": {"bind": "127.0.0.1", "port": port},
            "auth": {"apiKeys": False},
            "limits": {"maxBodyBytes": MAX_BODY},
            "endpoints": [
                {"path": "/mcp", "servers": ["demo"], "auth": {"mode": "off"}},
                {"path": "/locked", "servers": ["demo"], "auth": {"mode": "required"}},
                {"path": "/down", "servers": ["gone"], "auth": {"mode": "off"}},
                {"path": "/slow", "servers": ["slowdemo"], "auth": {"mode": "off"}},
            ],
        },
    }
    servers = {
        "demo": demo_spec(work, 10),
        "gone": {"http": {"url": f"http://127.0.0.1:{free_port()}/mcp"}, "timeouts": {"requestSeconds": 3}},
        "slowdemo": demo_spec(work, 1),
    }
    docs = [gateway] + [{"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": name}, "spec": spec}
                        for name, spec in servers.items()]
    return "\n---\n".join(_yaml(doc) for doc in docs) + "\n"


def launch(base: Path, name: str, log_format: str) -> LogGateway:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    work = base / name
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = work / "gateway.yaml"
    config_path.write_text(config_text(port, work))
    stdout_path, stderr_path = work / "stdout.log", work / "stderr.log"
    argv = [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--log-format", log_format, "--log-level", "debug"]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    gw = LogGateway(name=name, dir=work, port=port, config_path=config_path, popen=popen, stdout_path=stdout_path,
                    stderr_path=stderr_path)
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    try:
        with httpx2.Client(timeout=1.0, trust_env=False) as http:
            while time.monotonic() < deadline and popen.poll() is None:
                try:
                    # Not /readyz's status: /down's upstream never comes up. The servers the tests
                    # call must have finished their handshake.
                    ready = http.get(f"{gw.base_url}/readyz").json().get("servers", {})
                    if ready.get("demo") == "ready" and ready.get("slowdemo") == "ready":
                        return gw
                    last = f"servers: {ready}"
                except (httpx2.HTTPError, ValueError) as error:
                    last = f"{type(error).__name__}: {error}"
                time.sleep(0.1)
        pytest.fail(f"the gateway did not come up ({last})\n{gw.describe()}", pytrace=False)
    except BaseException:
        gw.stop()
        raise


@pytest.fixture(scope="module")
def jgw(log_root: Path) -> Iterator[LogGateway]:
    gw = launch(log_root / "logging", "json", "json")
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def gw(jgw: LogGateway) -> LogGateway:
    jgw.alive()
    return jgw


# --- requests -------------------------------------------------------------------------------------------


def call_message(tool: str = "echo", arguments: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    message = wire.modern_request("tools/call", {"name": tool, "arguments": arguments if arguments is not None else {"message": "hi"}})
    if progress:
        message["params"]["_meta"]["progressToken"] = f"p-{message['id']}"
    return message


async def call(gw: LogGateway, path: str = "/mcp", *, tool: str = "echo", arguments: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None, progress: bool = False) -> wire.Reply:
    message = call_message(tool, arguments, progress)
    async with wire.client() as http:
        with anyio.fail_after(CALL_TIMEOUT):
            return await wire.post(http, gw.url(path), message, {**wire.modern_headers(message), **(headers or {})})


def raw_request(gw: LogGateway, request_id: bytes | None, *, origin: str | None = None, path: str = "/mcp") -> tuple[int, bytes]:
    """A stateless echo call over a raw socket, with the X-Request-Id header's bytes exactly as given."""
    message = call_message(arguments={"message": "raw"})
    body = json.dumps(message).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{gw.port}", "Content-Type: application/json", f"Accept: {wire.ACCEPT}"]
    lines += [f"{name}: {value}" for name, value in wire.modern_headers(message).items()]
    if origin:
        lines.append(f"Origin: {origin}")
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    head = "\r\n".join(lines).encode() + b"\r\n"
    if request_id is not None:
        head += b"X-Request-Id: " + request_id + b"\r\n"
    return wire.raw_http("127.0.0.1", gw.port, head + b"\r\n" + body)


def response_headers(response: bytes) -> list[tuple[str, bytes]]:
    head = response.split(b"\r\n\r\n", 1)[0]
    out = []
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out.append((name.decode("latin-1").strip().lower(), value.strip()))
    return out


def request_ids(response: bytes) -> list[bytes]:
    return [value for name, value in response_headers(response) if name == "x-request-id"]


# --- 1. the format ---------------------------------------------------------------------------------------


async def test_every_stderr_line_is_one_json_object(gw: LogGateway) -> None:
    # Some traffic first: a session, a call, a refusal, an upstream failure.
    async with wire.client() as http:
        session = await wire.open_session(http, gw.url(), "2025-11-25")
        reply = await wire.session_call(http, session, "tools/call", {"name": "echo", "arguments": {"message": "s"}})
        assert reply.result["content"][0]["text"] == "s", reply.describe()
        await wire.close_session(http, session)
    assert (await call(gw)).status == 200
    assert (await call(gw, headers={"Origin": BAD_ORIGIN})).status == 403
    assert "error" in (await call(gw, "/down")).response

    lines = gw.json_lines()
    assert len(lines) >= 5, f"expected some log lines, got {len(lines)}\n{gw.describe()}"
    problems = []
    for line in lines:
        for key in ("ts", "level", "msg", "logger", "source"):
            if not isinstance(line.get(key), str):
                problems.append(f"{key!r} missing or not a string: {line}")
        if isinstance(line.get("ts"), str) and not RFC3339.fullmatch(line["ts"]):
            problems.append(f"ts is not RFC 3339: {line}")
        if line.get("level") not in LEVELS:
            problems.append(f"unknown level: {line}")
        if "request_id" in line and not (isinstance(line["request_id"], str) and PLAIN.fullmatch(line["request_id"])):
            problems.append(f"request_id is not a plain id: {line}")
    assert not problems, "JSON log lines:\n  " + "\n  ".join(problems[:20])
    assert any(line.get("level") == "debug" for line in lines), "--log-level debug: no debug line"
    assert any(line.get("msg") == "session started" for line in lines), "no 'session started' line"
    # Nothing is logged in the text format on stdout instead (no decision log is configured here).
    text_lines = [line for line in gw.stdout().splitlines() if re.match(r"\d{4}-\d\d-\d\dT\S+ (trace|debug|info|notice|warning|error|critical) ", line)]
    assert not text_lines, f"text-format log lines on stdout with --log-format json: {text_lines[:5]}"


# --- 2. X-Request-Id on every MCP response ------------------------------------------------------------------


async def test_request_id_on_every_mcp_response(gw: LogGateway) -> None:
    seen: dict[str, str] = {}

    def check(what: str, status: int | None, headers: httpx2.Headers, expected_status: int | None = None) -> None:
        if expected_status is not None:
            assert status == expected_status, f"{what}: expected HTTP {expected_status}, got {status}"
        value = headers.get("x-request-id")
        assert value is not None, f"{what} (HTTP {status}): no X-Request-Id header: {dict(headers)}"
        assert GENERATED.fullmatch(value), f"{what}: a generated id should be 16 hex digits: {value!r}"
        assert value not in seen, f"{what}: the id {value} was already given to {seen[value]}"
        seen[value] = what

    reply = await call(gw)
    check("stateless tools/call (JSON)", reply.status, reply.headers, 200)
    reply = await call(gw, tool="slow", arguments={"steps": 2, "intervalMs": 100}, progress=True)
    assert reply.content_type.startswith("text/event-stream") and reply.notifications, f"expected SSE with progress: {reply.describe()}"
    check("stateless tools/call with progress (SSE)", reply.status, reply.headers, 200)
    reply = await call(gw, "/down")
    check("tools/call to an unreachable upstream", reply.status, reply.headers)
    reply = await call(gw, "/locked")
    check("no token on an endpoint that requires auth", reply.status, reply.headers, 401)
    reply = await call(gw, headers={"Origin": BAD_ORIGIN})
    check("a refused Origin", reply.status, reply.headers, 403)
    unknown = wire.modern_request("no/such/method")
    async with wire.client() as http:
        reply = await wire.post(http, gw.url(), unknown, wire.modern_headers(unknown))
        check("an unknown method (stateless)", reply.status, reply.headers, 404)
        reply = await wire.post(http, gw.url(), b"{not json", raw=True)
        check("invalid JSON", reply.status, reply.headers, 400)
        reply = await wire.post(http, gw.url(), b"x" * (MAX_BODY + 10), raw=True)
        check("a body over maxBodyBytes", reply.status, reply.headers, 413)
        reply = await wire.post(http, gw.url(), call_message(), {"Accept": "text/plain"})
        check("Accept: text/plain", reply.status, reply.headers, 406)
        response = await http.put(gw.url(), content=b"{}")
        check("PUT", response.status_code, response.headers, 405)
        session = await wire.open_session(http, gw.url(), "2025-11-25")
        check("initialize", session.initialize.status, session.initialize.headers, 200)
        note = await wire.post(http, gw.url(), {"jsonrpc": "2.0", "method": "notifications/initialized"}, session.headers())
        check("a notification (202)", note.status, note.headers, 202)
        deleted = await wire.close_session(http, session)
        check("DELETE of a session", deleted.status_code, deleted.headers)
        gone = await wire.session_call(http, session, "tools/list")
        check("a request on a deleted session", gone.status, gone.headers, 404)


async def test_plain_client_request_id_is_echoed_and_logged(gw: LogGateway) -> None:
    for value in ("abc-123_X.y", "A" * 64, "0", "trace.7f3a-b_c"):
        reply = await call(gw, headers={"X-Request-Id": value})
        assert reply.status == 200 and reply.headers.get("x-request-id") == value, f"X-Request-Id {value!r}: {reply.describe()}"
    # A request that logs: its line carries the client's id.
    refused = await call(gw, headers={"X-Request-Id": "client-chosen-1", "Origin": BAD_ORIGIN})
    assert refused.status == 403 and refused.headers.get("x-request-id") == "client-chosen-1", refused.describe()
    lines = gw.wait_for(lambda line: line.get("request_id") == "client-chosen-1")
    assert any(line.get("msg") == "refused request" for line in lines), (
        f"no 'refused request' line with request_id client-chosen-1: {lines}\n{gw.describe()}")


# --- 3. hostile ids ---------------------------------------------------------------------------------------------

HOSTILE = [
    ("65 characters", b"R" * 65),
    ("double quotes", b'rid"quoted"value'),
    ("spaces", b"rid with spaces"),
    ("tabs", b"rid\twith\ttabs"),
    ("JSON", b'{"rid":"json"}'),
    ("non-ASCII", b"rid-caf\xc3\xa9-\xe2\x98\x83"),
    ("percent-encoded newline", b"rid%0Ainjected"),
    ("semicolon", b"rid;semicolon=1"),
    ("slash", b"rid/with/slash"),
    ("angle brackets", b"rid<script>x</script>"),
    ("backslash", b"rid\\backslash\\n"),
    ("empty", b""),
    ("only spaces", b"   "),
]


def assert_replaced(what: str, value: bytes, response: bytes) -> str:
    ids = request_ids(response)
    assert len(ids) == 1, f"X-Request-Id {what}: expected one X-Request-Id response header, got {ids}: {response[:500]!r}"
    replaced = ids[0].decode("latin-1")
    assert GENERATED.fullmatch(replaced), f"X-Request-Id {what} ({value!r}): expected a new 16-hex id, got {replaced!r}"
    if len(value.strip()) >= 5:
        assert value not in response, f"X-Request-Id {what}: the value was echoed in the response: {response[:800]!r}"
    return replaced


async def test_hostile_request_ids_are_replaced(gw: LogGateway) -> None:
    replaced: dict[str, tuple[bytes, str]] = {}
    for what, value in HOSTILE:
        status, response = raw_request(gw, value)
        assert status == 200, f"X-Request-Id {what}: HTTP {status}: {response[:500]!r}"
        assert_replaced(what, value, response)
        # And in a request that logs something.
        status, response = raw_request(gw, value, origin=BAD_ORIGIN)
        assert status == 403, f"X-Request-Id {what} with a bad Origin: HTTP {status}: {response[:500]!r}"
        replaced[what] = (value, assert_replaced(what, value, response))

    log = gw.stderr()
    for what, (value, new_id) in replaced.items():
        lines = gw.wait_for(lambda line, new_id=new_id: line.get("request_id") == new_id)
        assert any(line.get("msg") == "refused request" for line in lines), (
            f"X-Request-Id {what}: no 'refused request' line with the replacement id {new_id}: {lines}")
        if len(value.strip()) >= 5:
            text = value.decode("utf-8", "replace")
            for form in {text, json.dumps(text)[1:-1]}:
                assert form not in log, f"X-Request-Id {what}: the hostile value reached the log: {form!r}"
    for line in gw.json_lines():
        if "request_id" in line:
            assert PLAIN.fullmatch(line["request_id"]), f"a log line with a request_id that is not plain: {line}"


@pytest.mark.parametrize("value", [b"rid\nX-Injected: yes", b"rid\r\n folded-line", b"rid\rcarriage"],
                         ids=["bare-LF", "obs-fold", "bare-CR"])
async def test_request_id_with_a_line_break_never_reaches_a_header_or_log(gw: LogGateway, value: bytes) -> None:
    try:
        status, response = raw_request(gw, value)
    except (AssertionError, OSError):
        status, response = 0, b""  # the connection was closed without an HTTP answer: fine
    ids = request_ids(response)
    names = [name for name, _ in response_headers(response)]
    assert "x-injected" not in names, f"{value!r}: a header was injected into the response: {response[:500]!r}"
    for rid in ids:
        assert PLAIN.fullmatch(rid.decode("latin-1")), f"{value!r}: X-Request-Id {rid!r} in HTTP {status}"
        if status == 200:
            assert GENERATED.fullmatch(rid.decode("latin-1")), f"{value!r}: HTTP 200 with X-Request-Id {rid!r} (expected a new id)"
    for line in gw.json_lines():
        rid = line.get("request_id", "")
        assert "folded" not in rid and "Injected" not in rid and "carriage" not in rid, f"{value!r} reached a log line: {line}"
    gw.alive()


# --- 4. request ids on log lines --------------------------------------------------------------------------------


async def test_log_lines_carry_the_request_id(gw: LogGateway) -> None:
    # A refusal (generated id).
    refused = await call(gw, headers={"Origin": BAD_ORIGIN})
    refused_id = refused.headers.get("x-request-id")
    assert refused.status == 403 and refused_id, refused.describe()
    lines = gw.wait_for(lambda line: line.get("request_id") == refused_id)
    assert [line.get("msg") for line in lines] == ["refused request"], f"lines for {refused_id}: {lines}"
    assert lines[0].get("level") == "notice", lines[0]

    # An upstream failure (client id).
    failed = await call(gw, "/down", headers={"X-Request-Id": "down-call-1"})
    assert "error" in failed.response and "gone" in failed.error["message"], failed.describe()
    lines = gw.wait_for(lambda line: line.get("request_id") == "down-call-1" and line.get("msg") == "upstream failure")
    assert lines and lines[0].get("upstream") == "gone" and lines[0].get("level") == "warning", (
        f"no 'upstream failure' line with request_id down-call-1: {[l for l in gw.json_lines() if l.get('msg') == 'upstream failure']}")

    # A session start.
    async with wire.client() as http:
        init = wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})
        reply = await wire.post(http, gw.url(), init, {"X-Request-Id": "init-1"})
        assert reply.status == 200 and reply.headers.get("x-request-id") == "init-1", reply.describe()
    lines = gw.wait_for(lambda line: line.get("request_id") == "init-1")
    assert any(line.get("msg") == "session started" for line in lines), f"lines for init-1: {lines}"

    # Lines of other requests never carry these ids.
    for line in gw.json_lines():
        if line.get("request_id") == refused_id:
            assert line.get("msg") == "refused request", f"another line with {refused_id}: {line}"


async def test_log_line_written_during_an_sse_stream_carries_the_request_id(gw: LogGateway) -> None:
    """slowdemo times out after 1 s; the slow call sends progress first, so its answer is an SSE
    stream, and the timeout is logged ("upstream failure") while that stream is being written."""
    started = time.monotonic()
    reply = await call(gw, "/slow", tool="slow", arguments={"steps": 6, "intervalMs": 400}, progress=True,
                       headers={"X-Request-Id": "sse-timeout-1"})
    elapsed = time.monotonic() - started
    assert reply.content_type.startswith("text/event-stream") and reply.notifications, f"expected SSE with progress first: {reply.describe()}"
    assert "error" in reply.response and "slowdemo" in reply.error["message"], f"expected a timeout naming slowdemo: {reply.describe()}"
    assert elapsed < 5, f"the timeout took {elapsed:.1f}s"
    assert reply.headers.get("x-request-id") == "sse-timeout-1", reply.describe()
    failures = gw.wait_for(lambda line: line.get("msg") == "upstream failure" and line.get("upstream") == "slowdemo")
    assert failures, f"no 'upstream failure' line for slowdemo\n{gw.describe()}"
    assert all(line.get("request_id") == "sse-timeout-1" for line in failures), (
        f"the 'upstream failure' line written while the SSE answer streamed lacks request_id sse-timeout-1: {failures}")


# --- 5. the text format ------------------------------------------------------------------------------------------


async def test_text_format_carries_the_request_id(log_root: Path) -> None:
    gw = launch(log_root / "logging", "text", "text")
    try:
        refused = await call(gw, headers={"X-Request-Id": "text-format-1", "Origin": BAD_ORIGIN})
        assert refused.status == 403 and refused.headers.get("x-request-id") == "text-format-1", refused.describe()
        status, response = raw_request(gw, b'rid" injected="1', origin=BAD_ORIGIN)
        assert status == 403, response[:300]
        new_id = assert_replaced("double quotes (text format)", b'rid" injected="1', response)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            log = gw.stderr()
            if f"request_id={new_id}" in log and "request_id=text-format-1" in log:
                break
            time.sleep(0.05)
        refused_lines = [line for line in gw.stderr().splitlines() if "refused request" in line]
        assert any("request_id=text-format-1" in line for line in refused_lines), f"text log: {refused_lines}"
        assert any(f"request_id={new_id}" in line for line in refused_lines), f"text log: {refused_lines}"
        assert 'injected="1' not in gw.stderr(), "the hostile id reached the text log"
        gw.alive()
    finally:
        gw.stop()
