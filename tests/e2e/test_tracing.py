"""Traces end to end (ops2 spec section 5, `spec.tracing`): a real gateway exporting OTLP/HTTP JSON to
`otlp_receiver.py` (a collector stand-in in the test process), in front of `policy_upstream.py` (the
Python SDK's server, a 2026-07-28 upstream, recording every HTTP request with headers and body), driven
by raw stateless (2026-07-28) HTTP requests so the `traceparent` header and `params._meta` are ours to set.

Each test starts its own receiver, upstream and gateway (API keys in SQLite, `/mcp` requiring scope
`mcp`, as in test_operations.py; `spec.tracing` added to the Gateway document).

a. An HTTP `traceparent` (+ `tracestate`): a SERVER span `tools/call echo` in the caller's trace whose
   parent is the caller's span, with mcp.method.name, gen_ai.tool.name, jsonrpc.request.id,
   mcp.protocol.version, gatehouse.endpoint; a `gatehouse.authenticate` INTERNAL child; a CLIENT child
   (gatehouse.server, server.address, server.port); the upstream request carries a traceparent in the
   same trace whose parent-id is the CLIENT span, in its headers and in `params._meta` (with the
   caller's tracestate). The collector's configured headers are sent; service.name is serviceName.
b. `params._meta.traceparent` is the parent when there is no header, and wins over a header; the
   client's `_meta.traceparent` is replaced on the way upstream.
c. No traceparent: a new trace with a root SERVER span, the CLIENT span the upstream's parent.
d. Invalid traceparent headers (zero ids, version ff, uppercase, extra field at version 00, garbage)
   are ignored: a new root trace, the call succeeds.
e. A call denied by policy: SERVER span status ERROR (code 2) with error.type, a `gatehouse.policy`
   child, no CLIENT span; an allowed call with the same policy is not an error.
f. The collector down (endpoint on a closed port): every call still succeeds, promptly.
g. Sampling: sampleRatio 0 traces nothing without a parent and nothing under an unsampled parent, but
   follows a sampled parent; service.name defaults to metadata.name.
h. The session era (2025-11-25, raw HTTP): tools/call with a traceparent header or `_meta.traceparent`
   is traced like a stateless call (mcp.protocol.version 2025-11-25) and propagated upstream.
i. `initialize` (a JSON-RPC request like any other) gets a SERVER span in the caller's trace.
j. An unsampled parent (flags 00) at sampleRatio 1: nothing is exported, and the caller's trace
   context is still propagated upstream with flags 00 (W3C Trace Context: a participant MUST send a
   received traceparent on, possibly with its own parent-id; dropping it re-roots the upstream's work).
k. Behind the Swift demo server (stdio): a `fail` call (isError) is an ERROR span (error.type tool_error);
   a streamed call (progress over SSE) has SERVER and CLIENT spans that last until the answer is
   complete, not until the first event.
l. A streamed call that ends in a JSON-RPC error (the upstream timeout, after progress was streamed)
   is an ERROR span.
m. A request in flight when the gateway gets SIGTERM completes, and its spans are still exported
   (the final flush comes after in-flight requests are done).
(f also checks that `gatehouse_trace_spans_dropped_total` is exposed on the admin listener and 0.)

Gateway bugs found are written up in /work/notes/tracing-failures.md.
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
import wire
from auth_e2e import bearer
from conftest import DEMO_BIN, GATEHOUSE_BIN, Proc, _yaml, free_port, require_binary, wait_http_200
from otlp_receiver import KIND_CLIENT, KIND_INTERNAL, KIND_SERVER, STATUS_ERROR, OTLPReceiver, ReceivedSpan
from test_operations import (
    DENY_DELETE_POLICY,
    ENDPOINT,
    SDK_TIMEOUT,
    SERVER,
    OpsGateway,
    assert_echoed,
    config_yaml,
    create_key,
    scrape,
    start_policy_upstream,
)

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

SERVICE = "gatehouse-e2e"
METADATA_NAME = "ops-e2e"  # the Gateway document's metadata.name in test_operations.config_yaml
COLLECTOR_HEADER = "X-Collector-Key"
COLLECTOR_KEY = "e2e-collector-key"
SPAN_WAIT = 15.0  # export is batched every second; allow for a slow machine
MODERN = wire.MODERN
TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


# --- the setup: receiver + upstream + gateway with spec.tracing ---------------------------------


@dataclass
class TracedGateway(OpsGateway):
    upstream_url: str = ""

    @property
    def token(self) -> str:
        return self.keys["alice"]


def with_tracing(config_text: str, tracing: dict[str, Any]) -> str:
    """`spec.tracing` added to the Gateway document (the first document, see config_yaml)."""
    marker = "\nspec:\n"
    at = config_text.index(marker) + len(marker)
    return config_text[:at] + _yaml({"tracing": tracing}, 1) + "\n" + config_text[at:]


def tracing_spec(endpoint: str, *, service_name: str | None = SERVICE, sample_ratio: float = 1.0,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    otlp: dict[str, Any] = {"endpoint": endpoint}
    if headers:
        otlp["headers"] = headers
    spec: dict[str, Any] = {"otlp": otlp}
    if service_name is not None:
        spec["serviceName"] = service_name
    spec["sampleRatio"] = sample_ratio
    return spec


def launch_traced(base: Path, name: str, tracing: dict[str, Any], *, policy: dict[str, Any] | None = None,
                  upstream: str = "python", admin: bool = False) -> TracedGateway:
    """A gateway with `spec.tracing` in front of policy_upstream.py (recording), or of the Swift demo
    server over stdio (`upstream="demo"`: the `slow` and `fail` tools; nothing recorded)."""
    require_binary(GATEHOUSE_BIN, "gatehouse")
    work = base / name
    work.mkdir(parents=True, exist_ok=True)
    record_path = work / "upstream-requests.jsonl"
    up_proc: Proc | None = None
    url = ""
    if upstream == "python":
        up_proc, url = start_policy_upstream(work, record_path)
        upstream_spec: dict[str, Any] = {"http": {"url": url}}
    else:
        require_binary(DEMO_BIN, "gatehouse-demo-server")
        upstream_spec = {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"], "env": {}, "workingDirectory": str(work)}}
    port = free_port()
    admin_port = free_port() if admin else None
    config_path = work / "gateway.yaml"
    config_path.write_text(with_tracing(config_yaml(port, upstream_spec, policy=policy, admin_port=admin_port), tracing))
    try:
        keys = {"alice": create_key(config_path, "alice")}
    except BaseException:
        if up_proc is not None:
            up_proc.stop()
        raise
    proc = Proc("gateway", [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], work)
    gw = TracedGateway(dir=work, port=port, admin_port=admin_port, config_path=config_path, proc=proc, upstream=up_proc,
                       record_path=record_path, keys=keys, upstream_url=url)
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
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as r:
        yield r
        print(r.describe())


@pytest.fixture
def traced(scratch_dir: Path) -> Iterator[Callable[..., TracedGateway]]:
    started: list[TracedGateway] = []

    def start(tracing: dict[str, Any], *, name: str = "gw", **kwargs: Any) -> TracedGateway:
        gw = launch_traced(scratch_dir, name, tracing, **kwargs)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        print(gw.describe())
        gw.stop()


# --- requests and what the upstream saw -----------------------------------------------------------


def new_ids() -> tuple[str, str]:
    """A fresh (trace id, span id) in lowercase hex, never all zero."""
    return secrets.token_hex(15) + "a1", secrets.token_hex(7) + "b2"


async def call(gw: TracedGateway, tool: str, arguments: dict[str, Any], *, headers: dict[str, str] | None = None,
               meta: dict[str, Any] | None = None) -> tuple[dict[str, Any], wire.Reply]:
    """One stateless tools/call over raw HTTP with extra HTTP headers and extra `params._meta` keys."""
    message = wire.modern_request("tools/call", {"name": tool, "arguments": arguments})
    message["params"]["_meta"].update(meta or {})
    all_headers = wire.modern_headers(message)
    all_headers.update(bearer(gw.token))
    all_headers.update(headers or {})
    with anyio.fail_after(SDK_TIMEOUT):
        async with wire.client() as http:
            return message, await wire.post(http, gw.mcp_url, message, all_headers)


async def echo(gw: TracedGateway, text: str, **kwargs: Any) -> dict[str, Any]:
    message, reply = await call(gw, "echo", {"message": text}, **kwargs)
    assert_echoed(reply, text, f"echo {text!r} (headers={kwargs.get('headers')}, meta={kwargs.get('meta')})")
    return message


@dataclass
class UpstreamRequest:
    headers: list[tuple[str, str]]
    message: dict[str, Any]

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def meta(self) -> dict[str, Any]:
        return (self.message.get("params") or {}).get("_meta") or {}

    def traceparent(self) -> tuple[str, str, str, str]:
        """The one `traceparent` header, parsed: (version, trace id, parent id, flags)."""
        values = self.header_values("traceparent")
        assert len(values) == 1, f"the upstream request should carry exactly one traceparent header, got {values}: {self.describe()}"
        return parse_traceparent(values[0], "the upstream's traceparent header")

    def describe(self) -> str:
        return f"headers={self.headers} body={self.message}"


def parse_traceparent(value: Any, what: str) -> tuple[str, str, str, str]:
    match = TRACEPARENT.match(value) if isinstance(value, str) else None
    assert match, f"{what} is not a version-00 W3C traceparent: {value!r}"
    version, trace_id, parent_id, flags = match.groups()
    assert version == "00", f"{what}: version {version!r} (the gateway writes 00): {value!r}"
    assert trace_id != "0" * 32 and parent_id != "0" * 16, f"{what}: zero id in {value!r}"
    return version, trace_id, parent_id, flags


def upstream_request(gw: TracedGateway, tool: str, marker: str, argument: str = "message") -> UpstreamRequest:
    """The recorded upstream tools/call of `tool` whose `argument` is `marker` (exactly one)."""
    found = []
    for entry in gw.upstream_requests():
        body = entry.get("body")
        for message in body if isinstance(body, list) else [body]:
            params = message.get("params") if isinstance(message, dict) else None
            if (isinstance(params, dict) and message.get("method") == "tools/call" and params.get("name") == tool
                    and (params.get("arguments") or {}).get(argument) == marker):
                found.append(UpstreamRequest([(str(k), str(v)) for k, v in entry.get("headers") or []], message))
    assert len(found) == 1, f"expected one upstream tools/call {tool} with {argument}={marker!r}, found {len(found)}: {found}"
    return found[0]


def upstream_is_modern(request: UpstreamRequest) -> bool:
    return request.meta.get("io.modelcontextprotocol/protocolVersion") == MODERN


# --- finding spans --------------------------------------------------------------------------------


def one(spans: list[ReceivedSpan], what: str, **match: Any) -> ReceivedSpan | None:
    """The one span with these field values; None while there is none; fails when there are several."""
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) <= 1, f"more than one {what} ({match}):\n" + "\n".join(s.describe() for s in found)
    return found[0] if found else None


@dataclass
class RequestSpans:
    server: ReceivedSpan
    client: ReceivedSpan | None
    children: list[ReceivedSpan]  # every span whose parent is the server span
    trace: list[ReceivedSpan]


def request_spans(receiver: OTLPReceiver, trace_id: str, name: str, *, client: bool = True,
                  internal: tuple[str, ...] = ("gatehouse.authenticate",)) -> RequestSpans:
    """Waits for the SERVER span `name` in `trace_id`, its CLIENT child (when `client`) and its INTERNAL
    children named in `internal`, then returns them."""

    def complete(spans: list[ReceivedSpan]) -> RequestSpans | None:
        trace = [s for s in spans if s.trace_id == trace_id]
        server = one(trace, f"SERVER span {name!r}", kind=KIND_SERVER, name=name)
        if server is None:
            return None
        children = [s for s in trace if s.parent_span_id == server.span_id]
        client_span = one(children, "CLIENT child", kind=KIND_CLIENT)
        if client and client_span is None:
            return None
        if any(one(children, f"{n!r} child", kind=KIND_INTERNAL, name=n) is None for n in internal):
            return None
        return RequestSpans(server=server, client=client_span, children=children, trace=trace)

    expected = f"SERVER span {name!r}" + (" + CLIENT child" if client else "") + "".join(f" + {n}" for n in internal)
    return receiver.wait_for(complete, timeout=SPAN_WAIT, what=f"{expected} in trace {trace_id}")


def assert_plausible_times(span: ReceivedSpan) -> None:
    now = time.time_ns()
    assert span.start is not None and span.end is not None, f"timestamps missing: {span.raw}"
    assert isinstance(span.raw.get("startTimeUnixNano"), str), f"startTimeUnixNano should be a decimal string: {span.raw}"
    assert abs(now - span.start) < 600 * 10**9, f"startTimeUnixNano {span.start} is not wall-clock nanoseconds (now {now})"
    assert span.start <= span.end, f"the span ends before it starts: {span.describe()}"


# --- a. the caller's traceparent header -----------------------------------------------------------


async def test_server_and_client_spans_follow_the_callers_traceparent(
        traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint, headers={COLLECTOR_HEADER: COLLECTOR_KEY}))
    trace_id, caller_span = new_ids()
    header = f"00-{trace_id}-{caller_span}-01"
    message = await echo(gw, "a-traced", headers={"traceparent": header, "tracestate": "e2e=a"})

    got = request_spans(receiver, trace_id, "tools/call echo")
    server, client = got.server, got.client
    assert client is not None
    what = f"the SERVER span {server.describe()}"
    assert server.parent_span_id == caller_span, f"{what}: its parent should be the caller's span {caller_span}"
    assert HEX32.match(server.trace_id) and HEX16.match(server.span_id), f"{what}: ids must be lowercase hex"
    assert server.span_id != caller_span, f"{what}: the gateway's span needs its own id"
    assert server.service == SERVICE, f"{what}: service.name {server.service!r}, configured {SERVICE!r}"
    assert server.scope.get("name"), f"{what}: instrumentation scope {server.scope!r} has no name"
    attributes = server.attributes
    assert attributes.get("mcp.method.name") == "tools/call", f"{what}: mcp.method.name"
    assert attributes.get("gen_ai.tool.name") == "echo", f"{what}: gen_ai.tool.name"
    assert str(attributes.get("jsonrpc.request.id")) == str(message["id"]), f"{what}: jsonrpc.request.id should be {message['id']}"
    assert attributes.get("mcp.protocol.version") == MODERN, f"{what}: mcp.protocol.version"
    assert attributes.get("gatehouse.endpoint") == ENDPOINT, f"{what}: gatehouse.endpoint"
    assert server.status_code != STATUS_ERROR and "error.type" not in attributes, f"{what}: a successful call is not an error"
    assert_plausible_times(server)

    what = f"the CLIENT span {client.describe()}"
    upstream = urlsplit(gw.upstream_url)
    assert client.name == "tools/call echo", f"{what}: named like the SERVER span"
    assert client.attributes.get("gatehouse.server") == SERVER, f"{what}: gatehouse.server"
    assert client.attributes.get("server.address") == upstream.hostname, f"{what}: server.address (upstream {gw.upstream_url})"
    assert str(client.attributes.get("server.port")) == str(upstream.port), f"{what}: server.port (upstream {gw.upstream_url})"
    assert client.status_code != STATUS_ERROR, f"{what}: the upstream answered"
    assert_plausible_times(client)
    assert client.start is not None and server.start is not None and client.start >= server.start, (
        f"the CLIENT span starts before its SERVER parent: {client.describe()} / {server.describe()}")

    authenticate = one(got.children, "authenticate", name="gatehouse.authenticate")
    assert authenticate is not None and authenticate.kind == KIND_INTERNAL, f"gatehouse.authenticate: {got.children}"
    # The caller's span has exactly one child here: the gateway's SERVER span.
    assert [s.span_id for s in got.trace if s.parent_span_id == caller_span] == [server.span_id], (
        "only the SERVER span should point at the caller's span:\n" + "\n".join(s.describe() for s in got.trace))

    # The upstream request: traceparent in the same trace, the CLIENT span as its parent.
    request = upstream_request(gw, "echo", "a-traced")
    _, up_trace, up_parent, flags = request.traceparent()
    assert (up_trace, up_parent, flags) == (trace_id, client.span_id, "01"), (
        f"upstream traceparent {request.header_values('traceparent')}: expected trace {trace_id}, parent = the CLIENT span "
        f"{client.span_id}, flags 01")
    for value in request.header_values("tracestate"):
        assert value == "e2e=a", f"upstream tracestate header {value!r}: the caller's was 'e2e=a'"
    if upstream_is_modern(request):
        _, meta_trace, meta_parent, meta_flags = parse_traceparent(request.meta.get("traceparent"),
                                                                   "the upstream's params._meta.traceparent")
        assert (meta_trace, meta_parent, meta_flags) == (trace_id, client.span_id, "01"), (
            f"upstream _meta.traceparent {request.meta.get('traceparent')!r}: expected the CLIENT span {client.span_id} "
            f"in trace {trace_id}")
        assert request.meta.get("tracestate") == "e2e=a", f"upstream _meta.tracestate {request.meta.get('tracestate')!r}"

    # The export itself: OTLP/HTTP JSON with the configured headers.
    assert not receiver.rejected, f"the receiver refused exports: {receiver.rejected}"
    for headers in receiver.request_headers:
        assert headers.get(COLLECTOR_HEADER.lower()) == COLLECTOR_KEY, f"spec.tracing.otlp.headers not sent: {headers}"
    gw.alive()


# --- b. params._meta.traceparent ------------------------------------------------------------------


async def test_meta_traceparent_is_the_parent_and_wins_over_the_header(
        traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint))

    # Only in _meta.
    meta_trace, meta_span = new_ids()
    meta_header = f"00-{meta_trace}-{meta_span}-01"
    await echo(gw, "b-meta-only", meta={"traceparent": meta_header, "tracestate": "e2e=b"})
    got = request_spans(receiver, meta_trace, "tools/call echo")
    assert got.server.parent_span_id == meta_span, (
        f"_meta.traceparent {meta_header}: the SERVER span's parent should be {meta_span}: {got.server.describe()}")
    assert got.client is not None
    request = upstream_request(gw, "echo", "b-meta-only")
    assert request.traceparent()[1:3] == (meta_trace, got.client.span_id), (
        f"upstream traceparent {request.header_values('traceparent')}: expected trace {meta_trace}, parent {got.client.span_id}")
    forwarded = request.meta.get("traceparent")
    assert forwarded != meta_header, f"the client's _meta.traceparent reached the upstream unchanged: {request.describe()}"
    if upstream_is_modern(request) or forwarded is not None:
        _, t, p, _ = parse_traceparent(forwarded, "the upstream's params._meta.traceparent")
        assert (t, p) == (meta_trace, got.client.span_id), (
            f"upstream _meta.traceparent {forwarded!r}: expected the CLIENT span {got.client.span_id} in trace {meta_trace}")
    if upstream_is_modern(request):
        assert request.meta.get("tracestate") == "e2e=b", f"upstream _meta.tracestate {request.meta.get('tracestate')!r}"

    # In _meta and in the header: _meta wins.
    meta_trace2, meta_span2 = new_ids()
    header_trace, header_span = new_ids()
    await echo(gw, "b-both", meta={"traceparent": f"00-{meta_trace2}-{meta_span2}-01"},
               headers={"traceparent": f"00-{header_trace}-{header_span}-01"})
    got2 = request_spans(receiver, meta_trace2, "tools/call echo")
    assert got2.server.parent_span_id == meta_span2, f"_meta's parent should win over the header's: {got2.server.describe()}"
    assert got2.client is not None
    assert upstream_request(gw, "echo", "b-both").traceparent()[1:3] == (meta_trace2, got2.client.span_id)
    stray = receiver.trace(header_trace)
    assert not stray, "spans in the header's trace although _meta carried a traceparent:\n" + "\n".join(s.describe() for s in stray)
    gw.alive()


# --- c. no traceparent: a new trace ---------------------------------------------------------------


async def test_no_traceparent_starts_a_new_trace(traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint))
    traces = []
    for text in ("c-root-1", "c-root-2"):
        await echo(gw, text)
        _, trace_id, parent_id, flags = upstream_request(gw, "echo", text).traceparent()
        assert flags == "01", f"{text}: a sampled trace (sampleRatio 1) should be propagated as sampled, flags {flags}"
        got = request_spans(receiver, trace_id, "tools/call echo")
        assert got.server.parent_span_id is None, f"{text}: without a traceparent the SERVER span is a root: {got.server.describe()}"
        assert got.client is not None and got.client.span_id == parent_id, (
            f"{text}: the upstream's parent {parent_id} should be the CLIENT span {got.client}")
        traces.append(trace_id)
    assert traces[0] != traces[1], f"two requests without a parent share trace {traces[0]}"
    gw.alive()


# --- d. invalid traceparent headers are ignored ---------------------------------------------------


INVALID_TRACEPARENTS = {
    "zero trace id": "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
    "zero span id": "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
    "version ff": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "uppercase hex": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    "version 00 with a fifth field": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "short trace id": "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    "garbage": "not-a-traceparent",
}


async def test_invalid_traceparent_is_ignored(traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint))
    for i, (why, value) in enumerate(INVALID_TRACEPARENTS.items()):
        text = f"d-invalid-{i}"
        await echo(gw, text, headers={"traceparent": value})
        _, trace_id, _, _ = upstream_request(gw, "echo", text).traceparent()
        assert trace_id not in value.lower(), f"{why} ({value}): the invalid trace id was used upstream"
        got = request_spans(receiver, trace_id, "tools/call echo")
        assert got.server.parent_span_id is None, (
            f"{why} ({value}): an invalid traceparent must be ignored (a new root span): {got.server.describe()}")
    gw.alive()


# --- e. errors ------------------------------------------------------------------------------------


async def test_denied_call_is_an_error_span(traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint), policy={"rego": {"inline": DENY_DELETE_POLICY}, "deniedTools": "error"})

    trace_id, caller_span = new_ids()
    _, denied = await call(gw, "delete_item", {"id": "e-1"}, headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert denied.status == 200 and denied.error["code"] == -32001, f"delete_item (denied by policy): {denied.describe()}"
    got = request_spans(receiver, trace_id, "tools/call delete_item", client=False,
                        internal=("gatehouse.authenticate", "gatehouse.policy"))
    what = f"the denied call's SERVER span {got.server.describe()}"
    assert got.server.parent_span_id == caller_span, what
    assert got.server.status_code == STATUS_ERROR, f"{what}: status should be ERROR (code 2)"
    error_type = got.server.attributes.get("error.type")
    assert isinstance(error_type, str) and error_type, f"{what}: attribute error.type missing"
    assert got.server.attributes.get("gen_ai.tool.name") == "delete_item", what
    # Spans are queued in the order they end, so the CLIENT span of this request would be here by now.
    assert got.client is None, f"a denied call has no upstream call, yet a CLIENT span: {got.client}"
    assert gw.upstream_calls("delete_item") == [], "the denied call reached the upstream"

    # An allowed call under the same policy: a policy span, no error.
    ok_trace, ok_span = new_ids()
    await echo(gw, "e-allowed", headers={"traceparent": f"00-{ok_trace}-{ok_span}-01"})
    allowed = request_spans(receiver, ok_trace, "tools/call echo", internal=("gatehouse.authenticate", "gatehouse.policy"))
    assert allowed.server.status_code != STATUS_ERROR and "error.type" not in allowed.server.attributes, (
        f"an allowed call is not an error: {allowed.server.describe()}")
    gw.alive()


# --- f. the collector down ------------------------------------------------------------------------


async def test_collector_down_never_fails_a_call(traced: Callable[..., TracedGateway]) -> None:
    closed = free_port()  # bound and released: nothing listens there
    gw = traced(tracing_spec(f"http://127.0.0.1:{closed}"), admin=True)
    slowest = 0.0
    with anyio.fail_after(50):
        for i in range(12):
            trace_id, span_id = new_ids()
            headers = {"traceparent": f"00-{trace_id}-{span_id}-01"} if i % 2 else None
            started = time.monotonic()
            await echo(gw, f"f-{i}", headers=headers)
            slowest = max(slowest, time.monotonic() - started)
            if i == 5:
                await anyio.sleep(2.5)  # let the exporter fail a few times in between
        assert slowest < 5, f"a call took {slowest:.1f} s with the collector down (export must be off the request path)"
        async with wire.client() as http:
            ready = await http.get(f"{gw.base_url}/readyz")
        assert ready.status_code == 200, f"/readyz with the collector down: HTTP {ready.status_code} {ready.text[:300]}"
        # Failed exports are not drops: the queue was emptied by each (failed) export.
        metrics = await scrape(gw)
        dropped = metrics.value("gatehouse_trace_spans_dropped_total")
        assert dropped == 0, f"gatehouse_trace_spans_dropped_total {dropped}\n{metrics.dump('gatehouse_trace')}"
    gw.alive()


# --- g. sampling ----------------------------------------------------------------------------------


async def test_sampling_follows_the_parent_and_the_ratio(traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint, service_name=None, sample_ratio=0.0))
    await echo(gw, "g-no-parent")
    unsampled_trace, unsampled_span = new_ids()
    await echo(gw, "g-unsampled-parent", headers={"traceparent": f"00-{unsampled_trace}-{unsampled_span}-00"})
    sampled_trace, sampled_span = new_ids()
    await echo(gw, "g-sampled-parent", headers={"traceparent": f"00-{sampled_trace}-{sampled_span}-01"})

    got = request_spans(receiver, sampled_trace, "tools/call echo")
    assert got.server.parent_span_id == sampled_span, f"a sampled parent is followed even at sampleRatio 0: {got.server.describe()}"
    assert got.server.service == METADATA_NAME, (
        f"without serviceName, service.name should be metadata.name {METADATA_NAME!r}: got {got.server.service!r}")
    # Spans are exported in the order they end; give a straggler one more export interval anyway.
    time.sleep(1.5)
    others = [s for s in receiver.spans() if s.trace_id != sampled_trace and s.kind == KIND_SERVER]
    assert not others, ("sampleRatio 0: no SERVER spans without a parent or under an unsampled parent, got:\n"
                        + "\n".join(s.describe() for s in others))
    gw.alive()


# --- h. the session era ---------------------------------------------------------------------------


async def test_session_era_requests_are_traced(traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint))
    version = "2025-11-25"
    trace_id, caller_span = new_ids()
    meta_trace, meta_span = new_ids()
    with anyio.fail_after(SDK_TIMEOUT):
        async with wire.client() as http:
            http.headers.update(bearer(gw.token))
            session = await wire.open_session(http, gw.mcp_url, version)
            message = wire.request("tools/call", {"name": "echo", "arguments": {"message": "h-header"}})
            reply = await wire.post(http, gw.mcp_url, message, {**session.headers(), "traceparent": f"00-{trace_id}-{caller_span}-01"})
            assert_echoed(reply, "h-header", f"session-era echo with a traceparent header ({version})")
            meta = {"traceparent": f"00-{meta_trace}-{meta_span}-01"}
            reply = await wire.post(http, gw.mcp_url,
                                    wire.request("tools/call", {"name": "echo", "arguments": {"message": "h-meta"}, "_meta": meta}),
                                    session.headers())
            assert_echoed(reply, "h-meta", f"session-era echo with _meta.traceparent ({version})")
            await wire.close_session(http, session)

    got = request_spans(receiver, trace_id, "tools/call echo")
    what = f"the session-era SERVER span {got.server.describe()}"
    assert got.server.parent_span_id == caller_span, f"{what}: parent should be the caller's span {caller_span}"
    assert got.server.attributes.get("mcp.protocol.version") == version, f"{what}: mcp.protocol.version"
    assert str(got.server.attributes.get("jsonrpc.request.id")) == str(message["id"]), f"{what}: jsonrpc.request.id"
    assert got.client is not None
    assert upstream_request(gw, "echo", "h-header").traceparent()[1:3] == (trace_id, got.client.span_id), (
        f"session era: the upstream's traceparent should name the CLIENT span {got.client.span_id} in trace {trace_id}")

    got_meta = request_spans(receiver, meta_trace, "tools/call echo")
    assert got_meta.server.parent_span_id == meta_span, f"session era, _meta.traceparent: {got_meta.server.describe()}"
    assert got_meta.client is not None
    request = upstream_request(gw, "echo", "h-meta")
    assert request.traceparent()[1:3] == (meta_trace, got_meta.client.span_id), f"session era, _meta: {request.describe()}"
    forwarded = request.meta.get("traceparent")
    if upstream_is_modern(request) or forwarded is not None:
        assert parse_traceparent(forwarded, "the upstream's _meta.traceparent")[1:3] == (meta_trace, got_meta.client.span_id), (
            f"the client's _meta.traceparent should be replaced by the CLIENT span's: {request.describe()}")
    gw.alive()


# --- i. initialize --------------------------------------------------------------------------------


async def test_initialize_is_traced(traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint))
    trace_id, caller_span = new_ids()
    with anyio.fail_after(SDK_TIMEOUT):
        async with wire.client() as http:
            http.headers.update(bearer(gw.token))
            http.headers["traceparent"] = f"00-{trace_id}-{caller_span}-01"
            session = await wire.open_session(http, gw.mcp_url, "2025-11-25")
            await wire.close_session(http, session)
    got = request_spans(receiver, trace_id, "initialize", client=False)
    what = f"the initialize SERVER span {got.server.describe()}"
    assert got.server.parent_span_id == caller_span, what
    assert got.server.attributes.get("mcp.method.name") == "initialize", f"{what}: mcp.method.name"
    assert got.server.status_code != STATUS_ERROR, f"{what}: initialize succeeded"
    gw.alive()


# --- j. an unsampled parent -----------------------------------------------------------------------


async def test_unsampled_parent_is_not_exported_but_propagated(
        traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint, sample_ratio=1.0))
    header_trace, header_span = new_ids()
    await echo(gw, "j-header", headers={"traceparent": f"00-{header_trace}-{header_span}-00", "tracestate": "e2e=j"})
    meta_trace, meta_span = new_ids()
    await echo(gw, "j-meta", meta={"traceparent": f"00-{meta_trace}-{meta_span}-00", "tracestate": "e2e=j"})
    sampled_trace, sampled_span = new_ids()
    await echo(gw, "j-sampled", headers={"traceparent": f"00-{sampled_trace}-{sampled_span}-01"})

    # Nothing is exported under an unsampled parent, even at sampleRatio 1 (the parent's flag decides).
    request_spans(receiver, sampled_trace, "tools/call echo")
    time.sleep(1.5)  # one more export interval for stragglers
    exported = [s for s in receiver.spans() if s.trace_id in (header_trace, meta_trace)]
    assert not exported, "spans exported under an unsampled parent:\n" + "\n".join(s.describe() for s in exported)

    # The trace context still travels upstream, unsampled, in the caller's trace.
    for text, trace_id, how in (("j-header", header_trace, "traceparent header"), ("j-meta", meta_trace, "_meta.traceparent")):
        request = upstream_request(gw, "echo", text)
        values = request.header_values("traceparent")
        assert len(values) == 1, (
            f"unsampled parent in the {how} (00-{trace_id}-...-00): the upstream request should still carry a traceparent "
            f"header in trace {trace_id} with flags 00 (W3C: MUST propagate), got {values}: {request.describe()}")
        _, up_trace, _, flags = parse_traceparent(values[0], f"the upstream's traceparent ({how}, unsampled)")
        assert (up_trace, flags) == (trace_id, "00"), f"unsampled parent in the {how}: upstream traceparent {values[0]}"
        if upstream_is_modern(request):
            _, m_trace, _, m_flags = parse_traceparent(request.meta.get("traceparent"), f"the upstream's _meta.traceparent ({how})")
            assert (m_trace, m_flags) == (trace_id, "00"), f"unsampled parent in the {how}: upstream _meta {request.meta}"
    gw.alive()


# --- k. the demo server: a tool error, a streamed answer -------------------------------------------


async def test_tool_error_and_streamed_call_spans(traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint), upstream="demo")

    fail_trace, fail_span = new_ids()
    _, failed = await call(gw, "fail", {}, headers={"traceparent": f"00-{fail_trace}-{fail_span}-01"})
    assert failed.status == 200 and failed.result.get("isError") is True, f"fail: {failed.describe()}"
    got = request_spans(receiver, fail_trace, "tools/call fail")
    assert got.server.status_code == STATUS_ERROR, f"a tool error (isError) is an ERROR span: {got.server.describe()}"
    assert got.server.attributes.get("error.type"), f"a tool error has error.type: {got.server.describe()}"

    slow_trace, slow_span = new_ids()
    steps, interval_ms = 3, 400
    started = time.monotonic()
    _, slow = await call(gw, "slow", {"steps": steps, "intervalMs": interval_ms}, meta={"progressToken": "k-1"},
                         headers={"traceparent": f"00-{slow_trace}-{slow_span}-01"})
    elapsed = time.monotonic() - started
    assert slow.content_type.startswith("text/event-stream"), f"slow with a progressToken should stream: {slow.describe()}"
    assert slow.result["content"][0]["text"] == f"done after {steps} steps", slow.describe()
    got = request_spans(receiver, slow_trace, "tools/call slow")
    assert got.client is not None
    minimum = steps * interval_ms / 1000 * 0.9
    for span in (got.server, got.client):
        assert span.start is not None and span.end is not None
        duration = (span.end - span.start) / 1e9
        assert duration >= minimum, (
            f"the streamed call took {elapsed:.2f} s at the client ({steps} x {interval_ms} ms upstream), but its "
            f"{'SERVER' if span.kind == KIND_SERVER else 'CLIENT'} span lasted {duration:.2f} s: it must end when the "
            f"answer is complete, not at the first event: {span.describe()}")
    gw.alive()


# --- l. a streamed call that ends in an error ------------------------------------------------------


async def test_streamed_call_ending_in_an_error_is_an_error_span(
        traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint), upstream="demo")  # timeouts.requestSeconds 10 (config_yaml)
    trace_id, span_id = new_ids()
    with anyio.fail_after(30):
        _, slow = await call(gw, "slow", {"steps": 30, "intervalMs": 500}, meta={"progressToken": "l-1"},
                             headers={"traceparent": f"00-{trace_id}-{span_id}-01"})
    assert slow.content_type.startswith("text/event-stream"), f"slow with a progressToken should stream: {slow.describe()}"
    assert slow.notifications, f"progress should have been streamed before the timeout: {slow.describe()}"
    error = slow.error  # the gateway's upstream timeout, as the stream's last event
    got = request_spans(receiver, trace_id, "tools/call slow")
    assert got.server.status_code == STATUS_ERROR, (
        f"the streamed answer ended with JSON-RPC error {error.get('code')} ({error.get('message')!r}), "
        f"but the SERVER span is not an error: {got.server.describe()}")
    assert got.server.attributes.get("error.type"), f"no error.type: {got.server.describe()}"
    gw.alive()


# --- m. shutdown --------------------------------------------------------------------------------


async def test_in_flight_request_spans_survive_shutdown(traced: Callable[..., TracedGateway], receiver: OTLPReceiver) -> None:
    gw = traced(tracing_spec(receiver.endpoint), upstream="demo")
    trace_id, span_id = new_ids()
    steps, interval_ms = 4, 500

    async def terminate() -> None:
        await anyio.sleep(0.7)  # the call is in flight (about 2 s)
        gw.proc.popen.send_signal(signal.SIGTERM)

    async with anyio.create_task_group() as tg:
        tg.start_soon(terminate)
        _, slow = await call(gw, "slow", {"steps": steps, "intervalMs": interval_ms},
                             headers={"traceparent": f"00-{trace_id}-{span_id}-01"})
    assert slow.status == 200 and slow.result["content"][0]["text"] == f"done after {steps} steps", (
        f"a call in flight at SIGTERM should complete: {slow.describe()}")
    try:
        gw.proc.popen.wait(timeout=20)
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"the gateway did not exit within 20 s of SIGTERM\n{gw.describe()}") from error
    got = request_spans(receiver, trace_id, "tools/call slow", internal=())
    assert got.server.parent_span_id == span_id, got.server.describe()
