"""An MCP upstream that is not ours: the official Python SDK (mcp 2.3.0) serving the
demo tool set over Streamable HTTP at http://HOST:PORT/mcp.

It mirrors gatehouse-demo-server so the same end-to-end tests run against both:

  tools      echo {message} -> text message
             add {a, b} -> text of the sum ("5")
             slow {steps=3, intervalMs=500} -> progress (i, steps) after each interval,
                                                then "done after N steps"
             fail -> isError true, "the fail tool always fails"
  resources  demo://readme -> "Gatehouse demo server"
  templates  demo://items/{id} -> "item {id}"
  prompts    greet {name} -> user message "Say hello to {name}."

Usage: python upstream_server.py [--host 127.0.0.1] [--port 0] [--path /mcp] [--record-headers FILE]
--record-headers appends one JSON line per HTTP request ({"method", "path", "headers": [[name, value], ...]})
to FILE, so a test can check what the gateway sent upstream (e.g. that a client's token never arrives).
Prints "listening on http://HOST:PORT/PATH" to stderr once the socket is bound,
like the demo server, so a test fixture can wait for that line.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent

server = MCPServer("gatehouse-python-upstream", version="1.0.0", log_level="WARNING")


@server.tool(description="Echo the message back as text.", structured_output=False)
def echo(message: str) -> str:
    return message


@server.tool(description="Add two numbers; the result is the sum as text.", structured_output=False)
def add(a: float, b: float) -> str:
    total = a + b
    return str(int(total)) if float(total).is_integer() else str(total)


@server.tool(
    description="Work for steps x intervalMs milliseconds, reporting progress after each step.",
    structured_output=False,
)
async def slow(ctx: Context, steps: int = 3, intervalMs: int = 500) -> str:  # noqa: N803 (wire name)
    for i in range(1, steps + 1):
        await anyio.sleep(intervalMs / 1000)
        await ctx.report_progress(i, steps)
    return f"done after {steps} steps"


@server.tool(description="Always fails with a tool error (isError true).", structured_output=False)
def fail() -> CallToolResult:
    # Returned rather than raised: a raised ToolError gets an "Error executing tool" prefix.
    return CallToolResult(content=[TextContent(type="text", text="the fail tool always fails")], is_error=True)


@server.resource("demo://readme", name="readme", description="About this server", mime_type="text/plain")
def readme() -> str:
    return "Gatehouse demo server"


@server.resource("demo://items/{id}", name="item", description="An item by id", mime_type="text/plain")
def item(id: str) -> str:  # noqa: A002 (template variable name)
    return f"item {id}"


@server.prompt(name="greet", description="Greet someone by name.")
def greet(name: str) -> str:
    return f"Say hello to {name}."


def recording(app: Any, record_path: str) -> Any:
    """ASGI middleware: log each HTTP request's method, path and headers, then pass it on."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
            line = json.dumps({"method": scope["method"], "path": scope["path"], "headers": headers})
            with open(record_path, "a", encoding="utf-8") as log:
                log.write(line + "\n")
        await app(scope, receive, send)

    return wrapped


async def serve(host: str, port: int, path: str, record_path: str | None = None) -> None:
    # Bind the socket ourselves so port 0 works and the printed port is the real one.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    if record_path:
        app = recording(app, record_path)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    http = uvicorn.Server(config)

    async def announce() -> None:
        while not http.started:
            await anyio.sleep(0.02)
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on http://{shown}:{bound_port}{path}", file=sys.stderr, flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await http.serve(sockets=[sock])
        tg.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/mcp")
    parser.add_argument("--record-headers", default=None, metavar="FILE")
    args = parser.parse_args()
    anyio.run(serve, args.host, args.port, args.path, args.record_headers)


if __name__ == "__main__":
    main()
