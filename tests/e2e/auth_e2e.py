"""Shared pieces of the auth end-to-end tests (test_auth_oidc.py, test_auth_replicas.py).

- `start_auth_gateway()`: a gateway whose Gateway document carries `spec.auth`, `spec.storage`
  and an endpoint `/mcp` with `auth: {mode: required, scopes: [mcp]}` in front of the stdio
  demo server (no extra process to manage);
- `gatehouse()`: the CLI (`hash-password`, `apikey create|list|revoke`) with the gateway's env;
- raw HTTP checks (`initialize_raw`, `www_authenticate`) and SDK clients that carry a bearer
  token (`sdk_echo`, an httpx2.AsyncClient with the Authorization header handed to
  `streamable_http_client(url, http_client=...)`, in both protocol eras);
- the embedded authorization server's login page driven like a browser (`authorization_code_flow`).
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import os
import re
import secrets
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from conftest import DEMO_BIN, GATEHOUSE_BIN, Proc, _yaml, require_binary, wait_http_200
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from wire import client as raw_client
from wire import post, request

SCOPE = "mcp"
CLIENT_INFO = {"name": "gatehouse-e2e-auth", "version": "1.0.0"}
SDK_TIMEOUT = 20


# --- the gateway ----------------------------------------------------------------------------------


def stdio_demo_spec(workdir: Path) -> dict[str, Any]:
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    return {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"], "env": {}, "workingDirectory": str(workdir)},
            "timeouts": {"requestSeconds": 10}}


def gateway_yaml(
    port: int,
    auth: dict[str, Any],
    upstream_spec: dict[str, Any],
    *,
    storage: dict[str, Any] | None = None,
    sessions_key: str | None = None,
    endpoint_auth: dict[str, Any] | None = None,
) -> str:
    spec: dict[str, Any] = {"listen": {"bind": "127.0.0.1", "port": port}}
    if storage is not None:
        spec["storage"] = storage
    spec["auth"] = auth
    if sessions_key:
        spec["sessions"] = {"key": sessions_key}
    spec["endpoints"] = [
        {"path": "/mcp", "servers": ["demo"], "auth": endpoint_auth or {"mode": "required", "scopes": [SCOPE]}}
    ]
    gateway = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "auth-e2e"}, "spec": spec}
    server = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": "demo"}, "spec": upstream_spec}
    return _yaml(gateway) + "\n---\n" + _yaml(server) + "\n"


@dataclass
class AuthGateway:
    name: str
    port: int
    config_path: Path
    proc: Proc
    env: dict[str, str] = field(default_factory=dict)
    public_url: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def resource(self) -> str:
        """The resource (audience) of /mcp: publicURL + /mcp."""
        return f"{self.public_url or self.base_url}/mcp"

    def describe(self) -> str:
        return f"{self.proc.describe()}\n--- {self.config_path} ---\n{self.config_path.read_text()}"

    def alive(self) -> None:
        assert self.proc.popen.poll() is None, f"gateway {self.name} died\n{self.describe()}"

    def stop(self) -> None:
        self.proc.stop()


def start_auth_gateway(
    log_dir: Path,
    name: str,
    port: int,
    auth: dict[str, Any],
    *,
    storage: dict[str, Any] | None = None,
    sessions_key: str | None = None,
    env: dict[str, str] | None = None,
    upstream_spec: dict[str, Any] | None = None,
) -> AuthGateway:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    config_path = log_dir / f"{name}.yaml"
    config_path.write_text(
        gateway_yaml(port, auth, upstream_spec or stdio_demo_spec(log_dir), storage=storage, sessions_key=sessions_key)
    )
    proc = Proc(name, [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], log_dir, env=env)
    gateway = AuthGateway(name=name, port=port, config_path=config_path, proc=proc, env=dict(env or {}),
                          public_url=str(auth.get("publicURL") or ""))
    try:
        wait_http_200(proc, f"{gateway.base_url}/readyz", context=f"--- {config_path} ---\n{config_path.read_text()}\n")
    except BaseException:
        proc.stop()
        raise
    return gateway


# --- the CLI --------------------------------------------------------------------------------------


def gatehouse(*args: str, env: dict[str, str] | None = None, input: str | None = None,  # noqa: A002
              check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    argv = [str(GATEHOUSE_BIN), *args]
    result = subprocess.run(argv, env={**os.environ, **(env or {})}, input=input, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(argv)}` exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def hash_password(password: str) -> str:
    """`gatehouse hash-password` with the password on stdin (no trailing newline)."""
    result = gatehouse("hash-password", input=password)
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"gatehouse hash-password printed nothing (stderr: {result.stderr})"
    digest = lines[-1]
    assert digest.startswith("pbkdf2-sha256$") and digest.count("$") == 3, (
        f"gatehouse hash-password printed {result.stdout!r}; expected pbkdf2-sha256$<rounds>$<salt>$<hash>"
    )
    return digest


# --- raw HTTP -------------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def initialize_raw(url: str, token: str | None, extra_headers: dict[str, str] | None = None) -> Any:
    """POST an initialize (2025-11-25) with the token (if any); returns the wire.Reply."""
    headers = dict(extra_headers or {})
    if token is not None:
        headers.update(bearer(token))
    message = request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT_INFO})
    async with raw_client() as http:
        return await post(http, url, message, headers)


_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def www_authenticate(reply: Any) -> dict[str, str]:
    """The Bearer challenge's parameters (plus "_scheme"); fails when the header is missing."""
    header = reply.headers.get("www-authenticate")
    assert header, f"no WWW-Authenticate header: {reply.describe()}"
    scheme, _, rest = header.strip().partition(" ")
    params = {"_scheme": scheme, "_raw": header}
    for match in _AUTH_PARAM.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return params


def assert_invalid_token(reply: Any, what: str) -> dict[str, str]:
    """401 + `WWW-Authenticate: Bearer error="invalid_token"`; returns the challenge's parameters."""
    assert reply.status == 401, f"{what}: expected 401, got {reply.describe()}"
    challenge = www_authenticate(reply)
    assert challenge["_scheme"].lower() == "bearer", f"{what}: challenge scheme: {challenge['_raw']}"
    assert challenge.get("error") == "invalid_token", f"{what}: expected error=\"invalid_token\" in {challenge['_raw']!r}"
    return challenge


async def assert_accepted(url: str, token: str, what: str) -> None:
    reply = await initialize_raw(url, token)
    assert reply.status == 200, f"{what}: expected 200, got {reply.describe()}"
    assert reply.result.get("protocolVersion") == "2025-11-25", f"{what}: {reply.describe()}"


# --- SDK clients with a bearer token -------------------------------------------------------------


def bearer_http_client(token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30.0, read=300.0), trust_env=False)


async def sdk_echo(url: str, token: str, message: str, era: str = "session") -> str:
    """Call the echo tool through the official SDK with `Authorization: Bearer <token>`; returns its text."""
    async with bearer_http_client(token) as http:
        if era == "session":
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=SDK_TIMEOUT) as session:
                    with anyio.fail_after(SDK_TIMEOUT):
                        await session.initialize()
                        result = await session.call_tool("echo", {"message": message})
        else:
            async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=SDK_TIMEOUT) as client:
                assert client.protocol_version == "2026-07-28", f"mcp.Client negotiated {client.protocol_version}"
                with anyio.fail_after(SDK_TIMEOUT):
                    result = await client.call_tool("echo", {"message": message})
    assert not result.is_error, f"echo returned an error: {result!r}"
    assert result.content and result.content[0].type == "text", f"echo result: {result!r}"
    return result.content[0].text


# --- the embedded authorization server: browser-like login ---------------------------------------


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inputs: dict[str, str] = {}
        self.forms: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append(values)
        elif tag == "input" and values.get("name"):
            self.inputs.setdefault(values["name"], values.get("value", ""))


def parse_login_page(page: str) -> dict[str, str]:
    parser = _FormParser()
    parser.feed(page)
    return parser.inputs


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def http_client() -> httpx2.Client:
    """A fresh synchronous client: no shared cookie jar (both replicas are 127.0.0.1), no redirects."""
    return httpx2.Client(timeout=httpx2.Timeout(15.0, connect=5.0), trust_env=False, follow_redirects=False)


@dataclass
class CodeGrant:
    code: str
    verifier: str
    redirect_uri: str
    location: str


def authorization_code_flow(
    page_base: str,
    form_base: str,
    *,
    client_id: str,
    redirect_uri: str,
    username: str,
    password: str,
    resource: str,
    issuer: str,
    scope: str = SCOPE,
) -> CodeGrant:
    """GET <page_base>/oauth/authorize, fill in the form, POST it to <form_base>/oauth/authorize; the code."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(12)
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "code_challenge": challenge,
        "code_challenge_method": "S256", "state": state, "scope": scope, "resource": resource,
    }
    with http_client() as http:
        page = http.get(f"{page_base}/oauth/authorize", params=query)
    assert page.status_code == 200, f"GET /oauth/authorize -> HTTP {page.status_code}: {page.text[:500]}"
    inputs = parse_login_page(page.text)
    for name in ("csrf", "request"):
        assert inputs.get(name), f"the login page has no hidden input {name!r}; inputs: {sorted(inputs)}\n{page.text[:1500]}"
    csrf_cookie = page.cookies.get("gh_csrf")
    assert csrf_cookie, f"GET /oauth/authorize set no gh_csrf cookie; Set-Cookie: {page.headers.get_list('set-cookie')}"
    form = {"csrf": inputs["csrf"], "request": inputs["request"], "username": username, "password": password,
            "decision": "allow"}
    with http_client() as http:
        answer = http.post(f"{form_base}/oauth/authorize", data=form, headers={"Cookie": f"gh_csrf={csrf_cookie}"})
    assert answer.status_code in (302, 303), (
        f"POST /oauth/authorize (allow) -> HTTP {answer.status_code}, expected 302: {answer.text[:500]}"
    )
    location = answer.headers.get("location", "")
    parsed = urllib.parse.urlsplit(location)
    params = dict(urllib.parse.parse_qsl(parsed.query))
    assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == redirect_uri, f"redirected to {location!r}"
    assert params.get("code"), f"no code in {location!r}"
    assert params.get("state") == state, f"state {params.get('state')!r} != {state!r} in {location!r}"
    assert params.get("iss") == issuer, f"iss {params.get('iss')!r} != {issuer!r} in {location!r}"
    return CodeGrant(code=params["code"], verifier=verifier, redirect_uri=redirect_uri, location=location)


def token_request(base: str, form: dict[str, str], auth: tuple[str, str] | None = None) -> httpx2.Response:
    with http_client() as http:
        return http.post(f"{base}/oauth/token", data=form, auth=auth)


def json_of(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise AssertionError(f"HTTP {response.status_code}, body is not JSON: {response.text[:500]!r}") from error
    assert isinstance(body, dict), f"token endpoint answered {body!r}"
    return body


def describe(response: httpx2.Response) -> str:
    return f"{response.request.method} {response.request.url} -> HTTP {response.status_code} {response.text[:500]!r}"


def jwt_header_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(p: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))

    pieces = token.split(".")
    assert len(pieces) == 3, f"not a JWT: {token[:60]}..."
    return part(pieces[0]), part(pieces[1])
