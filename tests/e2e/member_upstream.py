"""One member of an upstream pool for the balancing tests (test_balancing.py, test_shared_limits.py):
the official Python SDK (mcp 2.3.0) over Streamable HTTP at http://HOST:PORT/mcp, answering with the
instance name it was given, so a test can tell from each answer which member served it.

  tools   whoami -> text NAME                      (after --delay seconds)
          sleep {seconds} -> text NAME             (after seconds + --delay)
          echo {message} -> text message           (no delay)
  GET /healthz -> 200 {"status": "ok", "name": NAME}; 503 {"status": "unhealthy", ...} while the
          file given with --health-file exists (a test flips a member's health without stopping it)

Modes (--mode):
  stateless  the SDK's own dual-era app: it answers `server/discover` listing 2026-07-28, so the
             gateway talks to it statelessly (one self-contained POST per request, no session).
             This is how upstream_server.py is served too: the SDK picks the era per request, and
             Gatehouse picks 2026-07-28 whenever `server/discover` succeeds.
  session    a session-era-only server: every 2026-07-28 request (MCP-Protocol-Version header or
             the `io.modelcontextprotocol/protocolVersion` key in params._meta) is refused with
             HTTP 400 and JSON-RPC -32600, as a pre-2026 server refuses an unknown version. The
             gateway's `server/discover` therefore fails and it falls back to `initialize`: each
             upstream session lives on this one process.

Usage: python member_upstream.py --name NAME [--mode stateless|session] [--host 127.0.0.1] [--port 0]
       [--path /mcp] [--delay SECONDS] [--health-file PATH]
Prints "listening on http://HOST:PORT/PATH" to stderr once the socket is bound. The socket has
SO_REUSEADDR, so a test can kill a member and start it again on the same port at once.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer

MODERN = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"


def build_server(name: str, delay: float) -> MCPServer:
    server = MCPServer(f"gatehouse-member-{name}", version="1.0.0", log_level="WARNING")

    @server.tool(description=f"Answers this member's instance name ({name}).", structured_output=False)
    async def whoami() -> str:
        if delay > 0:
            await anyio.sleep(delay)
        return name

    @server.tool(description="Sleeps `seconds` (plus the member's delay), then answers the instance name.",
                 structured_output=False)
    async def sleep(seconds: float = 1.0) -> str:
        await anyio.sleep(max(0.0, seconds) + delay)
        return name

    @server.tool(description="Echo the message back as text.", structured_output=False)
    def echo(message: str) -> str:
        return message

    return server


def _json_response(status: int, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = json.dumps(body).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]}
    return start, {"type": "http.response.body", "body": raw}


def wrap(app: Any, *, name: str, mode: str, path: str, health_file: str | None) -> Any:
    """ASGI middleware: GET /healthz; in session mode, refuse 2026-07-28 requests."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["path"] == "/healthz" and scope["method"] == "GET":
            sick = bool(health_file) and os.path.exists(health_file)  # type: ignore[arg-type]
            start, body = _json_response(503 if sick else 200, {"status": "unhealthy" if sick else "ok", "name": name})
            await send(start)
            await send(body)
            return
        if mode != "session" or scope["path"] != path:
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        chunks: list[bytes] = []
        pending: list[Any] = []
        if scope["method"] == "POST":
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    pending.append(message)
                    break
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        raw = b"".join(chunks)
        modern = headers.get("mcp-protocol-version") == MODERN
        if not modern and raw:
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
            for message in decoded if isinstance(decoded, list) else [decoded]:
                meta = ((message or {}).get("params") or {}).get("_meta") if isinstance(message, dict) else None
                if isinstance(meta, dict) and meta.get(META_VERSION) == MODERN:
                    modern = True
        if modern:
            start, body = _json_response(400, {
                "jsonrpc": "2.0", "id": None,
                "error": {"code": -32600, "message": f"Bad Request: Unsupported protocol version: {MODERN}"},
            })
            await send(start)
            await send(body)
            return
        replayed = scope["method"] != "POST"

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            if pending:
                return pending.pop(0)
            return await receive()

        await app(scope, replay, send)

    return wrapped


async def serve(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    bound_port = sock.getsockname()[1]
    server = build_server(args.name, args.delay)
    app = server.streamable_http_app(streamable_http_path=args.path, host=args.host)
    app = wrap(app, name=args.name, mode=args.mode, path=args.path, health_file=args.health_file)
    # backlog: the least-requests test keeps several requests in flight at once
    http = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", backlog=256))

    async def announce() -> None:
        while not http.started:
            await anyio.sleep(0.02)
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"listening on http://{shown}:{bound_port}{args.path}", file=sys.stderr, flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await http.serve(sockets=[sock])
        tg.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the instance name whoami answers")
    parser.add_argument("--mode", choices=("stateless", "session"), default="stateless")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/mcp")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every whoami/sleep call takes extra")
    parser.add_argument("--health-file", default=None, metavar="PATH", help="/healthz answers 503 while PATH exists")
    anyio.run(serve, parser.parse_args())


if __name__ == "__main__":
    main()
