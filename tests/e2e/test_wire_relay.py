"""What goes through unchanged: a request the gateway does not need to rewrite reaches the
upstream as the client wrote it (escapes, spacing, key order), and the upstream's answer
reaches the client as the upstream wrote it — only the id differs, because the gateway gives
each request an id of its own upstream. Bytes that two JSON readers could read differently
(a repeated key) are never passed on as they are: the upstream and the client get the message
the gateway decided on, written anew.

The upstream here is a small recording HTTP server speaking 2026-07-28, so the test can see
the exact bytes on both sides.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Gateway, start_gateway

pytestmark = [pytest.mark.gateway_only]

META = (
    '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    '"io.modelcontextprotocol/clientInfo":{"name":"relay-test","version":"1"},'
    '"io.modelcontextprotocol/clientCapabilities":{}}'
)
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
}


class RecordingUpstream(BaseHTTPRequestHandler):
    """Answers server/discover, tools/list and tools/call; keeps every request body."""

    bodies: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        message = json.loads(body)
        method = message.get("method")
        raw_id = json.dumps(message.get("id"))
        if method == "server/discover":
            answer = ('{"jsonrpc":"2.0","id":%s,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],'
                      '"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"recorder","version":"1"}}}}' % raw_id)
        elif method == "tools/list":
            answer = ('{"jsonrpc":"2.0","id":%s,"result":{"resultType":"complete","tools":[{"name":"echo","inputSchema":{"type":"object"}},'
                      '{"name":"twice","inputSchema":{"type":"object"}}]}}' % raw_id)
        elif method == "tools/call" and message["params"]["name"] == "twice":
            # A repeated key in the answer: JSON readers disagree on which one counts.
            answer = ('{"jsonrpc":"2.0","id":%s,"result":{"resultType":"complete","content":[{"type":"text","text":"first"}],'
                      '"content":[{"type":"text","text":"second"}],"isError":false}}' % raw_id)
        elif method == "tools/call":
            type(self).bodies.append(body)
            # The id last, spaces, an escaped character and a slash: written the way no
            # serializer of ours would write them.
            answer = ('{ "jsonrpc": "2.0", "result": {"resultType":"complete", "content": [{"type":"text",'
                      '"text":"caf\\u00e9 \\/ ok"}], "isError": false}, "id": %s }' % raw_id)
        else:
            answer = '{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"no"}}' % raw_id
        data = answer.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def relay_gateway(log_root: Path) -> Iterator[Gateway]:
    RecordingUpstream.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    log_dir = log_root / "wire-relay"
    log_dir.mkdir(exist_ok=True)
    gateway = start_gateway(log_dir, {"http": {"url": f"http://127.0.0.1:{server.server_address[1]}/mcp"}}, name="gateway-relay")
    try:
        yield gateway
    finally:
        gateway.proc.stop()
        server.shutdown()
        server.server_close()


def post_raw(gateway: Gateway, body: bytes, name: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    try:
        connection.request("POST", "/mcp", body=body, headers={**HEADERS, "Mcp-Name": name})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def upstream_id(body: bytes) -> str:
    return json.dumps(json.loads(body)["id"])


def test_request_and_answer_keep_their_bytes_but_the_id(relay_gateway: Gateway) -> None:
    request = ('{ "jsonrpc":"2.0", "id":"client-7", "method":"tools/call", "params":{' + META +
               ', "name":"echo", "arguments":{"s":"\\u0041\\/b", "n":1.50E+2}}}').encode()
    status, answer = post_raw(relay_gateway, request, "echo")
    assert status == 200, answer
    [seen] = RecordingUpstream.bodies
    # Upstream: the client's bytes, with the gateway's own id in place of the client's.
    assert seen == request.replace(b'"client-7"', upstream_id(seen).encode()), seen
    assert upstream_id(seen) != '"client-7"'
    # Client: the upstream's bytes, with the client's id back.
    expected = ('{ "jsonrpc": "2.0", "result": {"resultType":"complete", "content": [{"type":"text",'
                '"text":"caf\\u00e9 \\/ ok"}], "isError": false}, "id": "client-7" }').encode()
    assert answer == expected, answer
    # Another call on the same connection pool: a new upstream id, same shape.
    status, again = post_raw(relay_gateway, request.replace(b'"client-7"', b"8"), "echo")
    assert status == 200 and again == expected.replace(b'"client-7"', b"8"), again


def test_a_repeated_key_is_never_relayed_as_it_came(relay_gateway: Gateway) -> None:
    # The gateway reads the last "name" (that is what policy sees); a server might read the first.
    request = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{' + META +
               ',"name":"unused","arguments":{},"name":"echo"}}').encode()
    status, answer = post_raw(relay_gateway, request, "echo")
    assert status == 200, answer
    [seen] = RecordingUpstream.bodies
    assert seen.count(b'"name":"echo"') == 1 and b'"unused"' not in seen, seen
    assert json.loads(seen)["params"]["name"] == "echo"
    # An answer with a repeated key reaches the client written anew, with one "content".
    request = ('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{' + META + ',"name":"twice","arguments":{}}}').encode()
    status, answer = post_raw(relay_gateway, request, "twice")
    assert status == 200, answer
    assert len(re.findall(rb'"content"', answer)) == 1, answer
    assert json.loads(answer)["result"]["content"][0]["text"] == "second"
