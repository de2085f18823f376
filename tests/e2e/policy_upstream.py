"""An MCP upstream for the policy end-to-end tests (test_policy.py): the official Python SDK
(mcp 2.3.0) over Streamable HTTP at http://HOST:PORT/mcp, with tool annotations the policies
can look at and a log of every HTTP request *including its body*, so a test can tell whether a
tools/call ever reached the upstream.

  tools      echo {message} -> text message                       (readOnlyHint true)
             add {a, b} -> text of the sum                         (readOnlyHint true)
             delete_item {id} -> "deleted {id}"                    (destructiveHint true, readOnlyHint false)
             profile {name} -> structured content {name, email, card, ssn, note}  (readOnlyHint true)
  resources  demo://readme -> "Gatehouse demo server"
  prompts    greet {name} -> user message "Say hello to {name}."

Usage: python policy_upstream.py [--host 127.0.0.1] [--port 0] [--path /mcp] [--record FILE]
--record appends one JSON line per HTTP request: {"method", "path", "headers": [[name, value], ...],
"body": <the JSON body, or the raw text, or null>}.
Prints "listening on http://HOST:PORT/PATH" to stderr once the socket is bound.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("gatehouse-policy-upstream", version="1.0.0", log_level="WARNING")

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)

# What `profile` answers: an email, a Luhn-valid card, an ssn, and a 16-digit number that fails Luhn.
PROFILE_EMAIL = "alice@example.com"
PROFILE_CARD = "4111 1111 1111 1111"
PROFILE_SSN = "123-45-6789"
PROFILE_NOTE = "order 1234 5678 9012 3456 shipped"


@server.tool(description="Echo the message back as text.", annotations=READ_ONLY, structured_output=False)
def echo(message: str) -> str:
    return message


@server.tool(description="Add two numbers; the result is the sum as text.", annotations=READ_ONLY, structured_output=False)
def add(a: float, b: float) -> str:
    total = a + b
    return str(int(total)) if float(total).is_integer() else str(total)


@server.tool(description="Pretends to delete an item.", annotations=DESTRUCTIVE, structured_output=False)
def delete_item(id: str) -> str:  # noqa: A002 (wire name)
    return f"deleted {id}"


@server.tool(description="A person's profile as structured content.", annotations=READ_ONLY, structured_output=True)
def profile(name: str) -> dict[str, str]:
    return {"name": name, "email": PROFILE_EMAIL, "card": PROFILE_CARD, "ssn": PROFILE_SSN, "note": PROFILE_NOTE}


@server.resource("demo://readme", name="readme", description="About this server", mime_type="text/plain")
def readme() -> str:
    return "Gatehouse demo server"


@server.prompt(name="greet", description="Greet someone by name.")
def greet(name: str) -> str:
    return f"Say hello to {name}."


def recording(app: Any, record_path: str) -> Any:
    """ASGI middleware: read the whole request body, log method/path/headers/body, replay it to the app."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
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
        raw = b"".join(chunks)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        line = json.dumps({"method": scope["method"], "path": scope["path"], "headers": headers, "body": body})
        with open(record_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
        replayed = False

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


async def serve(host: str, port: int, path: str, record_path: str | None) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    if record_path:
        app = recording(app, record_path)
    http = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))

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
    parser.add_argument("--record", default=None, metavar="FILE")
    args = parser.parse_args()
    anyio.run(serve, args.host, args.port, args.path, args.record)


if __name__ == "__main__":
    main()
