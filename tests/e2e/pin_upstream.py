"""An MCP upstream whose tools are whatever a JSON file says, for the tool pinning tests
(test_tool_pinning.py): the official Python SDK (mcp 2.3.0, its low-level `Server`) over
Streamable HTTP at http://HOST:PORT/mcp.

  --tools FILE   a JSON array of MCP tool objects ({"name", "description", "inputSchema", ...}),
                 read again at every tools/list and returned as a plain dict by the low-level
                 handler, so every field of the spec's Tool (name, title, description, inputSchema,
                 outputSchema, annotations, ...) goes out with the values written; the SDK's result
                 sieve still drops top-level fields the spec does not know (use --raw for bytes).
  tools/call     any tool the file lists answers text "<tool>: <arguments as compact JSON>"
                 (json.dumps with separators (",", ":"), keys in the order sent); any other name
                 -> JSON-RPC -32602 "Unknown tool: <name>". With --raw (the file may not parse),
                 every name answers.
  list_changed   the file's (mtime, size, inode) is polled every 100 ms; when it changes, every
                 session seen so far gets `notifications/tools/list_changed` (the SDK's
                 ServerSession.send_tool_list_changed(), on the session's GET stream). The server
                 declares `tools.listChanged`.

Modes (--mode):
  session   (default) a session-era-only server: 2026-07-28 requests (MCP-Protocol-Version header
            or `io.modelcontextprotocol/protocolVersion` in params._meta) get HTTP 400 / -32600, as
            a pre-2026 server refuses an unknown version. The gateway's `server/discover` fails,
            it falls back to `initialize`, and its upstream sessions get the list_changed
            notifications on their GET streams.
  dual      the SDK's own dual-era app: the gateway then talks 2026-07-28 to it (no sessions). A
            file change is also published on the SDK's subscription bus, so `subscriptions/listen`
            streams (the 2026-07-28 way to hear of changes; the low-level server serves it with the
            SDK's ListenHandler) get `notifications/tools/list_changed` too.

--raw: tools/list is answered by an ASGI layer in front of the SDK with the file's bytes spliced
verbatim into `{"jsonrpc":"2.0","id":ID,"result":{"tools":<FILE BYTES>}}` (Content-Type
application/json), so a test can send what no JSON library would write (invalid UTF-8, nesting
deeper than the SDK serializes). Everything else still goes to the SDK.

Usage: python pin_upstream.py --tools FILE [--mode session|dual] [--raw] [--host 127.0.0.1] [--port 0] [--path /mcp]
Prints "listening on http://HOST:PORT/PATH" to stderr once the socket is bound.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged

MODERN = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
INVALID_PARAMS = -32602
POLL_SECONDS = 0.1


class State:
    def __init__(self, tools_path: str, raw: bool = False) -> None:
        self.tools_path = tools_path
        self.raw = raw
        self.bus = InMemorySubscriptionBus()  # subscriptions/listen streams (2026-07-28)
        # Sessions seen by requests (ServerSession objects, by identity): who gets list_changed.
        self.sessions: dict[str, Any] = {}

    def read_tools(self) -> list[dict[str, Any]]:
        with open(self.tools_path, "rb") as file:
            tools = json.loads(file.read())
        if not isinstance(tools, list):
            raise ValueError(f"{self.tools_path}: expected a JSON array of tools")
        return tools

    def remember(self, ctx: Any) -> None:
        session = getattr(ctx, "session", None)
        if session is None or not hasattr(session, "send_tool_list_changed"):
            return
        # One entry per MCP session (its Mcp-Session-Id), whatever object a request was handed.
        request = getattr(ctx, "request", None)
        headers = getattr(request, "headers", None)
        key = headers.get("mcp-session-id") if headers is not None else None
        if key:  # 2026-07-28 requests have no session: they hear of changes through subscriptions/listen
            self.sessions[key] = session

    async def notify_all(self) -> None:
        await self.bus.publish(ToolsListChanged())
        for key, session in list(self.sessions.items()):
            try:
                with anyio.fail_after(2):
                    await session.send_tool_list_changed()
            except Exception as error:  # noqa: BLE001 (a closed session: forget it)
                print(f"pin_upstream: dropping a session after list_changed failed: {type(error).__name__}: {error}",
                      file=sys.stderr, flush=True)
                self.sessions.pop(key, None)
        print(f"pin_upstream: sent notifications/tools/list_changed to {len(self.sessions)} session(s)", file=sys.stderr, flush=True)

    def stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.tools_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def watch(self) -> None:
        last = self.stamp()
        while True:
            await anyio.sleep(POLL_SECONDS)
            now = self.stamp()
            if now != last:
                last = now
                await self.notify_all()


def build_server(state: State) -> Server[Any]:
    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
        state.remember(ctx)
        result: dict[str, Any] = {"tools": state.read_tools()}  # --raw answers tools/list before the SDK sees it
        if getattr(ctx, "protocol_version", None) == MODERN:
            result.update({"resultType": "complete", "ttlMs": 0, "cacheScope": "private"})  # never cached: the file changes
        return result

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> dict[str, Any]:
        state.remember(ctx)
        names = None if state.raw else {tool.get("name") for tool in state.read_tools() if isinstance(tool, dict)}
        if names is not None and params.name not in names:
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name}")
        arguments = json.dumps(params.arguments or {}, separators=(",", ":"), ensure_ascii=False)
        result: dict[str, Any] = {"content": [{"type": "text", "text": f"{params.name}: {arguments}"}], "isError": False}
        if getattr(ctx, "protocol_version", None) == MODERN:
            result["resultType"] = "complete"
        return result

    return Server("gatehouse-pin-upstream", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool,
                  on_subscriptions_listen=ListenHandler(state.bus))


def _json_response(status: int, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]}
    return start, {"type": "http.response.body", "body": raw}


def wrap(app: Any, *, state: State, mode: str, raw_list: bool, path: str) -> Any:
    """ASGI layer: refuse 2026-07-28 requests in session mode; answer tools/list raw with --raw."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != path or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        chunks: list[bytes] = []
        pending: list[Any] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                pending.append(message)
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            decoded = json.loads(body) if body else None
        except ValueError:
            decoded = None
        modern = headers.get("mcp-protocol-version") == MODERN
        if isinstance(decoded, dict):
            meta = (decoded.get("params") or {}).get("_meta") if isinstance(decoded.get("params"), dict) else None
            if isinstance(meta, dict) and meta.get(META_VERSION) == MODERN:
                modern = True
        if mode == "session" and modern:
            start, end = _json_response(400, json.dumps({
                "jsonrpc": "2.0", "id": None,
                "error": {"code": -32600, "message": f"Bad Request: Unsupported protocol version: {MODERN}"},
            }).encode())
            await send(start)
            await send(end)
            return
        if raw_list and isinstance(decoded, dict) and decoded.get("method") == "tools/list" and "id" in decoded:
            with open(state.tools_path, "rb") as file:
                tools_bytes = file.read()
            result_type = b',"resultType":"complete"' if modern else b""
            answer = (b'{"jsonrpc":"2.0","id":' + json.dumps(decoded["id"]).encode() + b',"result":{"tools":'
                      + tools_bytes + result_type + b"}}")
            start, end = _json_response(200, answer)
            await send(start)
            await send(end)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            if pending:
                return pending.pop(0)
            return await receive()

        await app(scope, replay, send)

    return wrapped


async def serve(args: argparse.Namespace) -> None:
    state = State(args.tools, raw=args.raw)
    if not args.raw:
        state.read_tools()  # fail at start on a broken file
    server = build_server(state)
    # Declare tools.listChanged (the handshake-era capability; the SDK derives it from these options).
    options = NotificationOptions(tools_changed=True)
    original = server.create_initialization_options
    server.create_initialization_options = lambda notification_options=None, *a, **k: original(  # type: ignore[method-assign]
        notification_options or options, *a, **k)
    original_caps = server.get_capabilities
    server.get_capabilities = lambda notification_options=None, *a, **k: original_caps(  # type: ignore[method-assign]
        notification_options or options, *a, **k)

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    bound_port = sock.getsockname()[1]
    app = server.streamable_http_app(streamable_http_path=args.path, host=args.host)
    app = wrap(app, state=state, mode=args.mode, raw_list=args.raw, path=args.path)
    http = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))

    async def announce() -> None:
        while not http.started:
            await anyio.sleep(0.02)
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"listening on http://{shown}:{bound_port}{args.path}", file=sys.stderr, flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        tg.start_soon(state.watch)
        await http.serve(sockets=[sock])
        tg.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", required=True, metavar="FILE", help="JSON array of MCP tool objects, read at every tools/list")
    parser.add_argument("--mode", choices=("session", "dual"), default="session")
    parser.add_argument("--raw", action="store_true", help="answer tools/list with the file's bytes verbatim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/mcp")
    anyio.run(serve, parser.parse_args())


if __name__ == "__main__":
    main()
