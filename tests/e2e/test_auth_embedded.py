"""The embedded OAuth authorization server, end to end (docs: /work/notes/auth-design.md).

One gateway (module scope) with `spec.auth.authorizationServer`: user alice (password hash from
`gatehouse hash-password`, passed through an env var), the confidential client `ci-bot`
(client_credentials, secret from an env var), dynamic registration, Client ID Metadata Documents
(private addresses refused), `cacheSeconds: 1`, SQLite storage in the scratch directory.
Endpoints: /mcp (demo server, scope mcp), /strict (demo server, scopes mcp + other) and /rec (the
Python SDK upstream started with --record-headers, scope mcp).

Clients:
- the official Python SDK (mcp 2.3.0): `OAuthClientProvider` driven headlessly (its
  redirect_handler logs in through the consent page with plain HTTP, its callback_handler hands
  back code/state/iss) and `ClientCredentialsOAuthProvider` with ci-bot's secret;
- raw HTTP (httpx2) for every refusal: replayed codes, redirect_uri and PKCE mismatches, refresh
  token reuse, revocation, CSRF, framing, token placement, scopes, CIMD address rules.

Two more gateways of their own: one with allowPrivateAddresses: true (a CIMD served over http on
loopback is accepted), and per-test ones for the SQLite store (state survives a restart; SIGTERM
exits 0).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio
import httpx2
import pytest
from conftest import (
    GATEHOUSE_BIN,
    PYTHON_UPSTREAM,
    Gateway,
    Proc,
    _yaml,
    free_port,
    require_binary,
    start_demo_http,
    wait_http_200,
)
from mcp import Client, ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from wire import modern_headers, modern_request, post

import sys

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

CACHE_SECONDS = 1  # spec.auth.cacheSeconds: how late a revocation may take effect
USERNAME = "alice"
CI_BOT = "ci-bot"
CALLBACK = "http://127.0.0.1:8976/callback"  # never listened on: the tests read the 302 Location
CALLBACK_2 = "http://127.0.0.1:8976/other-callback"
HTTP_TIMEOUT = httpx2.Timeout(15.0, connect=5.0)


# --- configuration and processes ------------------------------------------------------------


@dataclass
class Secrets:
    alice_password: str
    alice_hash: str
    ci_bot_secret: str

    def env(self) -> dict[str, str]:
        return {"GH_E2E_ALICE_HASH": self.alice_hash, "GH_E2E_CI_BOT_SECRET": self.ci_bot_secret,
                "GH_E2E_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN}


def hash_password(password: str) -> str:
    """`gatehouse hash-password`: the password on stdin, the hash on stdout."""
    require_binary(GATEHOUSE_BIN, "gatehouse")
    done = subprocess.run([str(GATEHOUSE_BIN), "hash-password"], input=password.encode(), capture_output=True, timeout=60)
    out = done.stdout.decode().strip()
    assert done.returncode == 0 and out, (
        f"gatehouse hash-password failed (code {done.returncode}): stdout={out!r} stderr={done.stderr.decode()[:2000]!r}"
    )
    digest = out.splitlines()[-1].strip()
    assert digest.startswith("pbkdf2-sha256$") and digest.count("$") == 3, f"unexpected hash format: {digest!r}"
    assert password not in digest
    return digest


def auth_gateway_config(
    port: int,
    *,
    servers: dict[str, dict[str, Any]],
    endpoints: list[dict[str, Any]],
    auth: dict[str, Any],
    storage_path: Path,
    name: str = "auth-e2e",
) -> str:
    """A Gateway document with spec.auth, spec.storage and spec.endpoints, plus one MCPServer per server."""
    gateway = {
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {
            "listen": {"bind": "127.0.0.1", "port": port},
            "storage": {"sqlite": {"path": str(storage_path)}},
            "auth": auth,
            # a list of mappings: _yaml writes it as a JSON flow sequence, which is valid YAML
            "endpoints": endpoints,
        },
    }
    docs = [_yaml(gateway)]
    for server_name, spec in servers.items():
        docs.append(_yaml({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": server_name},
            "spec": {**spec, "timeouts": {"requestSeconds": 10}},
        }))
    return "\n---\n".join(docs) + "\n"


def start_auth_gateway(
    log_dir: Path,
    name: str,
    secrets_: Secrets,
    servers: dict[str, dict[str, Any]],
    endpoints: list[dict[str, Any]],
    *,
    allow_private_addresses: bool = False,
    port: int | None = None,
    registration: dict[str, Any] | None = None,
) -> Gateway:
    """Start a gateway; with the same log_dir, name and port again, it reuses the config's SQLite file."""
    require_binary(GATEHOUSE_BIN, "gatehouse")
    log_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {
        "publicURL": base,
        "cacheSeconds": CACHE_SECONDS,
        "authorizationServer": {
            "accessTokenSeconds": 3600,
            "refreshTokenSeconds": 86400,
            "scopes": ["mcp", "other"],
            "users": [{"username": USERNAME, "passwordHash": {"valueFrom": {"env": "GH_E2E_ALICE_HASH"}}}],
            "clients": [{
                "clientID": CI_BOT,
                "clientSecret": {"valueFrom": {"env": "GH_E2E_CI_BOT_SECRET"}},
                "grantTypes": ["client_credentials"],
                "scopes": ["mcp", "other"],
                "redirectURIs": [],
            }],
            "registration": {
                "dynamic": True,
                "clientMetadataDocuments": True,
                "allowPrivateAddresses": allow_private_addresses,
                **(registration or {}),
            },
        },
    }
    config_path = log_dir / f"{name}.yaml"
    config_path.write_text(auth_gateway_config(
        port, servers=servers, endpoints=endpoints, auth=auth, storage_path=log_dir / f"{name}-gh.db",
    ))
    log_name = name if not (log_dir / f"{name}.log").exists() else f"{name}-{secrets.token_hex(3)}"
    proc = Proc(log_name, [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], log_dir,
                env=secrets_.env())
    try:
        wait_http_200(proc, f"{base}/readyz", context=f"--- {config_path} ---\n{config_path.read_text()}")
    except BaseException:
        proc.stop()
        raise
    return Gateway(port=port, config_path=config_path, proc=proc)


@dataclass
class Upstreams:
    demo_url: str
    rec_url: str
    rec_log: Path
    procs: list[Proc] = field(default_factory=list)

    def servers(self) -> dict[str, dict[str, Any]]:
        return {"demo": {"http": {"url": self.demo_url}}, "rec": {"http": {"url": self.rec_url}}}


ENDPOINTS = [
    {"path": "/mcp", "servers": ["demo"], "auth": {"mode": "required", "scopes": ["mcp"]}},
    {"path": "/strict", "servers": ["demo"], "auth": {"mode": "required", "scopes": ["mcp", "other"]}},
    {"path": "/rec", "servers": ["rec"], "auth": {"mode": "required", "scopes": ["mcp"]}},
]


@pytest.fixture(scope="module")
def log_dir(log_root: Path) -> Path:
    path = log_root / "auth-embedded"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def creds() -> Secrets:
    password = "correct horse " + secrets.token_urlsafe(12)
    return Secrets(alice_password=password, alice_hash=hash_password(password), ci_bot_secret=secrets.token_urlsafe(32))


@pytest.fixture(scope="module")
def upstreams(log_dir: Path) -> Iterator[Upstreams]:
    demo = start_demo_http(log_dir, "auth-demo-http")
    rec_log = log_dir / "rec-headers.jsonl"
    port = free_port()
    rec = Proc("auth-rec-python", [sys.executable, str(PYTHON_UPSTREAM), "--host", "127.0.0.1", "--port", str(port),
                                   "--record-headers", str(rec_log)], log_dir)
    try:
        match = rec.wait_for_line(r"listening on (http://\S+)")
        assert demo.url
        yield Upstreams(demo_url=demo.url, rec_url=match.group(1), rec_log=rec_log, procs=[p for p in (demo.proc, rec) if p])
    finally:
        rec.stop()
        if demo.proc:
            demo.proc.stop()


@pytest.fixture(scope="module")
def gateway(log_dir: Path, creds: Secrets, upstreams: Upstreams) -> Iterator[Gateway]:
    """The gateway under test (named `gateway` so a failed test's report carries its output)."""
    gw = start_auth_gateway(log_dir, "auth-gateway", creds, upstreams.servers(), ENDPOINTS)
    yield gw
    gw.proc.stop()


@pytest.fixture(scope="module")
def private_gateway(log_dir: Path, creds: Secrets, upstreams: Upstreams) -> Iterator[Gateway]:
    """The same, with registration.allowPrivateAddresses: true (CIMD over http:// on loopback)."""
    gw = start_auth_gateway(log_dir, "auth-gateway-private", creds, upstreams.servers(), ENDPOINTS,
                            allow_private_addresses=True)
    yield gw
    gw.proc.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=False) as client:
        yield client


# --- OAuth helpers (raw HTTP) ---------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


class FormParser(HTMLParser):
    """Collects <form action> and the name/value of every <input> (HTMLParser unescapes values)."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[str] = []
        self.inputs: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self.actions.append(attributes.get("action", ""))
        elif tag == "input" and "name" in attributes:
            self.inputs[attributes["name"]] = attributes.get("value", "")
        elif tag == "button" and "name" in attributes:
            self.buttons.append((attributes["name"], attributes.get("value", "")))


@dataclass
class ConsentPage:
    response: httpx2.Response
    csrf: str
    request: str
    cookie: str | None
    action: str

    @property
    def set_cookie_headers(self) -> list[str]:
        return self.response.headers.get_list("set-cookie")


def describe(response: httpx2.Response) -> str:
    return f"{response.request.method} {response.request.url} -> HTTP {response.status_code} headers={dict(response.headers)} body={response.text[:1500]!r}"


def parse_consent_page(response: httpx2.Response) -> ConsentPage:
    assert response.status_code == 200, f"expected the login/consent page: {describe(response)}"
    assert "text/html" in response.headers.get("content-type", ""), describe(response)
    parser = FormParser()
    parser.feed(response.text)
    assert "csrf" in parser.inputs and "request" in parser.inputs, f"no hidden csrf/request fields: {response.text[:3000]}"
    assert "username" in parser.inputs and "password" in parser.inputs, f"no username/password fields: {response.text[:3000]}"
    action = urljoin(str(response.request.url), parser.actions[0] if parser.actions and parser.actions[0] else "/oauth/authorize")
    return ConsentPage(response=response, csrf=parser.inputs["csrf"], request=parser.inputs["request"],
                       cookie=response.cookies.get("gh_csrf"), action=action)


def authorize_url(gw: Gateway, **params: str | None) -> str:
    return f"{gw.base_url}/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


async def get_page(http: httpx2.AsyncClient, url: str) -> httpx2.Response:
    http.cookies.clear()
    return await http.get(url)


async def submit(
    http: httpx2.AsyncClient,
    page: ConsentPage,
    *,
    username: str = USERNAME,
    password: str,
    decision: str = "allow",
    cookie: str | None = "from-page",
    csrf: str | None = None,
) -> httpx2.Response:
    """POST the consent form. cookie="from-page" sends the page's gh_csrf cookie; None sends no cookie."""
    http.cookies.clear()
    headers = {}
    value = page.cookie if cookie == "from-page" else cookie
    if value is not None:
        headers["Cookie"] = f"gh_csrf={value}"
    data = {"csrf": page.csrf if csrf is None else csrf, "request": page.request,
            "username": username, "password": password, "decision": decision}
    return await http.post(page.action, data=data, headers=headers)


def redirect_params(response: httpx2.Response, redirect_uri: str) -> dict[str, str]:
    """The query of a 302 to redirect_uri, as a flat dict."""
    assert response.status_code in (302, 303), f"expected a redirect to {redirect_uri}: {describe(response)}"
    location = response.headers.get("location", "")
    split = urlsplit(location)
    assert f"{split.scheme}://{split.netloc}{split.path}" == redirect_uri, f"redirected to {location!r}, not {redirect_uri}"
    return {k: v[0] for k, v in parse_qs(split.query).items()}


async def register_public_client(http: httpx2.AsyncClient, gw: Gateway, redirect_uris: list[str] | None = None) -> str:
    body = {
        "redirect_uris": redirect_uris or [CALLBACK],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "gatehouse e2e",
        "scope": "mcp",
    }
    response = await http.post(f"{gw.base_url}/oauth/register", json=body)
    assert response.status_code == 201, describe(response)
    info = response.json()
    assert info.get("client_id"), info
    assert "client_secret" not in info or not info["client_secret"], f"a public client got a secret: {info}"
    return info["client_id"]


@dataclass
class Flow:
    client_id: str
    redirect_uri: str
    verifier: str
    code: str
    state: str
    resource: str


async def authorization_code(
    http: httpx2.AsyncClient,
    gw: Gateway,
    creds: Secrets,
    *,
    client_id: str | None = None,
    redirect_uri: str = CALLBACK,
    scope: str = "mcp",
    resource: str | None = None,
) -> Flow:
    """Register (unless client_id is given), log in as alice, allow; returns the code and its PKCE verifier."""
    if client_id is None:
        client_id = await register_public_client(http, gw, [CALLBACK, CALLBACK_2])
    resource = resource or gw.mcp_url
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorize_url(gw, response_type="code", client_id=client_id, redirect_uri=redirect_uri,
                        code_challenge=challenge, code_challenge_method="S256", state=state, scope=scope,
                        resource=resource)
    page = parse_consent_page(await get_page(http, url))
    params = redirect_params(await submit(http, page, password=creds.alice_password), redirect_uri)
    assert params.get("code"), params
    assert params.get("state") == state, params
    assert params.get("iss") == gw.base_url, f"RFC 9207 iss: {params}"
    return Flow(client_id=client_id, redirect_uri=redirect_uri, verifier=verifier, code=params["code"], state=state,
                resource=resource)


async def token_request(http: httpx2.AsyncClient, gw: Gateway, data: dict[str, str],
                        auth: tuple[str, str] | None = None) -> httpx2.Response:
    return await http.post(f"{gw.base_url}/oauth/token", data=data, auth=auth)


async def exchange(http: httpx2.AsyncClient, gw: Gateway, flow: Flow, **override: str) -> httpx2.Response:
    data = {"grant_type": "authorization_code", "code": flow.code, "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier, "client_id": flow.client_id, "resource": flow.resource}
    data.update(override)
    return await token_request(http, gw, data)


async def refresh(http: httpx2.AsyncClient, gw: Gateway, flow: Flow, refresh_token: str) -> httpx2.Response:
    return await token_request(http, gw, {"grant_type": "refresh_token", "refresh_token": refresh_token,
                                          "client_id": flow.client_id, "resource": flow.resource})


def tokens_of(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, f"token request failed: {describe(response)}"
    body = response.json()
    assert body.get("access_token") and str(body.get("token_type", "")).lower() == "bearer", body
    return body


def assert_oauth_error(response: httpx2.Response, error: str, statuses: tuple[int, ...] = (400,)) -> None:
    assert response.status_code in statuses, f"expected {statuses} {error}: {describe(response)}"
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"OAuth error body is not JSON: {describe(response)}") from None
    assert body.get("error") == error, f"expected error={error}: {describe(response)}"


async def mcp_call(http: httpx2.AsyncClient, url: str, token: str | None, *, query: str = "") -> Any:
    """A 2026-07-28 tools/list with `Authorization: Bearer token` (if given); returns the wire Reply."""
    message = modern_request("tools/list")
    headers = modern_headers(message)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await post(http, url + query, message, headers)


async def assert_token_works(http: httpx2.AsyncClient, url: str, token: str) -> None:
    reply = await mcp_call(http, url, token)
    assert reply.status == 200, f"a fresh token was refused: {reply.describe()}"
    assert any(tool["name"] == "echo" for tool in reply.result["tools"]), reply.describe()


async def assert_token_dies(http: httpx2.AsyncClient, url: str, token: str, what: str) -> None:
    """Within cacheSeconds (+ a margin for scheduling), the token must get 401."""
    deadline = time.monotonic() + CACHE_SECONDS + 2.0
    while True:
        reply = await mcp_call(http, url, token)
        if reply.status == 401:
            assert "invalid_token" in reply.headers.get("www-authenticate", ""), reply.describe()
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the access token still works {CACHE_SECONDS}+2 s later: {reply.describe()}")
        await anyio.sleep(0.2)


def jwt_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    assert len(parts) == 3, f"not a compact JWS: {token[:40]}..."
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


# --- the SDK as the client --------------------------------------------------------------------


class MemoryStorage:
    """mcp.client.auth.TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class HeadlessBrowser:
    """redirect_handler/callback_handler for OAuthClientProvider: logs in over plain HTTP."""

    gw: Gateway
    creds: Secrets
    authorization_urls: list[str] = field(default_factory=list)
    result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, url: str) -> None:
        self.authorization_urls.append(url)
        async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=False) as browser:
            page = parse_consent_page(await get_page(browser, url))
            redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
            params = redirect_params(await submit(browser, page, password=self.creds.alice_password), redirect_uri)
        self.result = AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None, "the redirect handler did not get a code"
        result, self.result = self.result, None
        return result


@dataclass
class Trace:
    """Every request an httpx2 client sends (auth-flow requests included) and its status."""

    entries: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)

    async def on_response(self, response: httpx2.Response) -> None:
        request = response.request
        form: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        elif request.headers.get("content-type", "").startswith("application/json") and request.url.path == "/oauth/register":
            form = {"json": request.content.decode()}
        self.entries.append((request.method, request.url.path, response.status_code, form))

    def summary(self) -> list[str]:
        return [f"{m} {p} {s}" for m, p, s, _ in self.entries]


async def run_sdk_session(era: str, url: str, http_client: httpx2.AsyncClient) -> str:
    """Connect (session era: ClientSession + initialize; stateless: mcp.Client) and call echo."""
    if era == "session-2025-11-25":
        async with streamable_http_client(url, http_client=http_client) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=20) as session:
                with anyio.fail_after(30):
                    await session.initialize()
                    result = await session.call_tool("echo", {"message": "through oauth"})
    else:
        async with Client(streamable_http_client(url, http_client=http_client), read_timeout_seconds=20) as session:
            with anyio.fail_after(30):
                result = await session.call_tool("echo", {"message": "through oauth"})
    assert not result.is_error, result
    return result.content[0].text


@pytest.mark.parametrize("era", ["session-2025-11-25", "stateless-2026-07-28"])
async def test_sdk_authorization_code_flow_calls_a_tool(gateway: Gateway, creds: Secrets, era: str) -> None:
    browser = HeadlessBrowser(gateway, creds)
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=gateway.mcp_url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[CALLBACK],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            client_name="gatehouse e2e (sdk)",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    trace = Trace()
    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=60), trust_env=False,
                                  event_hooks={"response": [trace.on_response]}) as hc:
        text = await run_sdk_session(era, gateway.mcp_url, hc)
    assert text == "through oauth"
    steps = trace.summary()
    expected = [
        "POST /mcp 401",
        "GET /.well-known/oauth-protected-resource/mcp 200",
        "GET /.well-known/oauth-authorization-server 200",
        "POST /oauth/register 201",
        "POST /oauth/token 200",
    ]
    assert steps[:5] == expected, steps
    # then the original request again, with the token (the echo call above proves the MCP side)
    assert steps[5].startswith("POST /mcp ") and steps[5].split()[-1] not in ("401", "403"), steps
    # the authorization request: PKCE S256, the scope from WWW-Authenticate, the RFC 8707 resource
    assert len(browser.authorization_urls) == 1
    query = {k: v[0] for k, v in parse_qs(urlsplit(browser.authorization_urls[0]).query).items()}
    assert urlsplit(browser.authorization_urls[0]).path == "/oauth/authorize"
    assert query["code_challenge_method"] == "S256" and query["scope"] == "mcp", query
    assert query["resource"] == gateway.mcp_url, query
    token_form = next(form for m, p, s, form in trace.entries if p == "/oauth/token")
    assert token_form["grant_type"] == "authorization_code" and token_form["resource"] == gateway.mcp_url, token_form
    assert storage.tokens is not None and storage.tokens.refresh_token, storage.tokens
    claims = jwt_claims(storage.tokens.access_token)
    assert claims["iss"] == gateway.base_url and claims["sub"] == USERNAME, claims
    assert claims["aud"] in (gateway.mcp_url, [gateway.mcp_url]), claims
    assert "mcp" in claims["scope"].split() and claims["client_id"] == storage.client_info.client_id, claims

    # The SDK refreshes once the access token has expired (forced here), and the new token works.
    old_access = storage.tokens.access_token
    provider.context.token_expiry_time = time.time() - 5
    trace.entries.clear()
    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=60), trust_env=False,
                                  event_hooks={"response": [trace.on_response]}) as hc:
        assert await run_sdk_session(era, gateway.mcp_url, hc) == "through oauth"
    refreshes = [(s, form) for m, p, s, form in trace.entries if p == "/oauth/token"]
    assert refreshes and refreshes[0][0] == 200 and refreshes[0][1]["grant_type"] == "refresh_token", trace.summary()
    assert storage.tokens.access_token != old_access
    assert not browser.authorization_urls[1:], "the SDK had to log in again instead of refreshing"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_sdk_client_credentials_calls_a_tool(gateway: Gateway, creds: Secrets, method: str) -> None:
    provider = ClientCredentialsOAuthProvider(
        server_url=gateway.mcp_url,
        storage=MemoryStorage(),
        client_id=CI_BOT,
        client_secret=creds.ci_bot_secret,
        token_endpoint_auth_method=method,  # type: ignore[arg-type]
        scope="mcp",
        issuer=gateway.base_url,
    )
    trace = Trace()
    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=60), trust_env=False,
                                  event_hooks={"response": [trace.on_response]}) as hc:
        assert await run_sdk_session("session-2025-11-25", gateway.mcp_url, hc) == "through oauth"
    tokens = [(s, form) for m, p, s, form in trace.entries if p == "/oauth/token"]
    assert len(tokens) == 1 and tokens[0][0] == 200, trace.summary()
    assert tokens[0][1]["grant_type"] == "client_credentials" and tokens[0][1]["resource"] == gateway.mcp_url, tokens
    assert not any(p == "/oauth/register" for _, p, _, _ in trace.entries), trace.summary()


# --- metadata -------------------------------------------------------------------------------


async def test_metadata_documents(gateway: Gateway, http: httpx2.AsyncClient) -> None:
    base = gateway.base_url
    for path in ("/mcp", "/strict", ""):
        response = await http.get(f"{base}/.well-known/oauth-protected-resource{path}")
        assert response.status_code == 200, describe(response)
        prm = response.json()
        if path:
            assert prm["resource"] == base + path, prm
        else:  # the root document: one of the endpoints (several are configured here)
            assert prm["resource"].startswith(base + "/"), prm
        assert base in prm["authorization_servers"], prm
        assert prm.get("bearer_methods_supported") == ["header"], prm
        assert "mcp" in prm.get("scopes_supported", []), prm
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        response = await http.get(base + path)
        assert response.status_code == 200, describe(response)
        asm = response.json()
        assert asm["issuer"] == base, asm
        assert asm["authorization_endpoint"] == f"{base}/oauth/authorize", asm
        assert asm["token_endpoint"] == f"{base}/oauth/token", asm
        assert asm["registration_endpoint"] == f"{base}/oauth/register", asm
        assert asm["revocation_endpoint"] == f"{base}/oauth/revoke", asm
        assert asm["jwks_uri"] == f"{base}/oauth/jwks", asm
        assert asm["code_challenge_methods_supported"] == ["S256"], asm
        assert asm["response_types_supported"] == ["code"], asm
        assert set(asm["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}, asm
        assert {"none", "client_secret_basic", "client_secret_post"} <= set(asm["token_endpoint_auth_methods_supported"]), asm
        assert asm["client_id_metadata_document_supported"] is True, asm
        assert asm["authorization_response_iss_parameter_supported"] is True, asm
        assert {"mcp", "other"} <= set(asm["scopes_supported"]), asm
    jwks = (await http.get(f"{base}/oauth/jwks")).json()
    assert jwks["keys"] and all("d" not in key for key in jwks["keys"]), f"JWKS must hold public keys only: {jwks}"


async def test_access_token_is_an_es256_jwt_signed_by_a_published_key(gateway: Gateway, creds: Secrets,
                                                                       http: httpx2.AsyncClient) -> None:
    import jwt  # PyJWT, a dependency of mcp

    response = await token_request(http, gateway, {"grant_type": "client_credentials", "scope": "mcp",
                                                   "resource": gateway.mcp_url}, auth=(CI_BOT, creds.ci_bot_secret))
    body = tokens_of(response)
    assert "no-store" in response.headers.get("cache-control", ""), f"RFC 6749 5.1 Cache-Control: no-store: {describe(response)}"
    assert isinstance(body.get("expires_in"), int) and 0 < body["expires_in"] <= 3600, body
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header.get("kid"), header
    jwks = (await http.get(f"{gateway.base_url}/oauth/jwks")).json()
    key = next((k for k in jwks["keys"] if k.get("kid") == header["kid"]), None)
    assert key is not None, f"kid {header['kid']} not in {jwks}"
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience=gateway.mcp_url,
                        issuer=gateway.base_url, leeway=5)
    assert claims["sub"] == CI_BOT and claims["client_id"] == CI_BOT, claims
    assert claims["scope"].split() == ["mcp"], claims
    for claim in ("exp", "iat", "nbf", "jti", "gid"):
        assert claim in claims, f"missing {claim}: {claims}"


# --- refusals: authorization codes, PKCE, redirect URIs ----------------------------------------


async def test_replayed_code_is_refused_and_revokes_what_it_issued(gateway: Gateway, creds: Secrets,
                                                                   http: httpx2.AsyncClient) -> None:
    flow = await authorization_code(http, gateway, creds)
    first = tokens_of(await exchange(http, gateway, flow))
    assert first.get("refresh_token"), first
    await assert_token_works(http, gateway.mcp_url, first["access_token"])
    second = await exchange(http, gateway, flow)
    assert_oauth_error(second, "invalid_grant")
    await assert_token_dies(http, gateway.mcp_url, first["access_token"], "after the code was replayed")
    assert_oauth_error(await refresh(http, gateway, flow, first["refresh_token"]), "invalid_grant")


async def test_wrong_redirect_uri_at_authorize_gets_400_and_no_redirect(gateway: Gateway,
                                                                        http: httpx2.AsyncClient) -> None:
    client_id = await register_public_client(http, gateway, [CALLBACK])
    _, challenge = pkce_pair()
    for redirect_uri in ("http://127.0.0.1:8976/elsewhere", "https://evil.example/callback", CALLBACK + "/x"):
        response = await get_page(http, authorize_url(
            gateway, response_type="code", client_id=client_id, redirect_uri=redirect_uri, code_challenge=challenge,
            code_challenge_method="S256", state="s", scope="mcp", resource=gateway.mcp_url))
        assert response.status_code == 400, describe(response)
        assert "location" not in response.headers, describe(response)
    # a bad redirect_uri together with other errors (no PKCE, wrong response_type): still no redirect
    response = await get_page(http, authorize_url(
        gateway, response_type="token", client_id=client_id, redirect_uri="https://evil.example/callback", state="s"))
    assert response.status_code == 400 and "location" not in response.headers, describe(response)
    # an unknown client_id: the same
    response = await get_page(http, authorize_url(
        gateway, response_type="code", client_id="no-such-client", redirect_uri=CALLBACK, code_challenge=challenge,
        code_challenge_method="S256", state="s", scope="mcp", resource=gateway.mcp_url))
    assert response.status_code == 400 and "location" not in response.headers, describe(response)


async def test_wrong_redirect_uri_at_token_is_invalid_grant(gateway: Gateway, creds: Secrets,
                                                            http: httpx2.AsyncClient) -> None:
    flow = await authorization_code(http, gateway, creds)  # client registered with CALLBACK and CALLBACK_2
    assert_oauth_error(await exchange(http, gateway, flow, redirect_uri=CALLBACK_2), "invalid_grant")


async def test_code_is_bound_to_its_client(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    flow = await authorization_code(http, gateway, creds)
    other = await register_public_client(http, gateway, [CALLBACK])
    assert_oauth_error(await exchange(http, gateway, flow, client_id=other), "invalid_grant")


@pytest.mark.parametrize("pkce", ["missing", "plain"])
async def test_authorization_without_s256_pkce_is_refused(gateway: Gateway, http: httpx2.AsyncClient, pkce: str) -> None:
    client_id = await register_public_client(http, gateway, [CALLBACK])
    verifier, _ = pkce_pair()
    params: dict[str, str | None] = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK,
                                     "state": "st-" + pkce, "scope": "mcp", "resource": gateway.mcp_url}
    if pkce == "plain":
        params.update(code_challenge=verifier, code_challenge_method="plain")
    response = await get_page(http, authorize_url(gateway, **params))
    assert response.status_code != 200, f"a login page was served without S256 PKCE: {describe(response)}"
    query = redirect_params(response, CALLBACK)
    assert query.get("error") == "invalid_request" and "code" not in query, query
    assert query.get("state") == "st-" + pkce and query.get("iss") == gateway.base_url, query


async def test_unsupported_response_type_is_sent_back_to_the_client(gateway: Gateway, http: httpx2.AsyncClient) -> None:
    client_id = await register_public_client(http, gateway, [CALLBACK])
    _, challenge = pkce_pair()
    response = await get_page(http, authorize_url(
        gateway, response_type="token", client_id=client_id, redirect_uri=CALLBACK, code_challenge=challenge,
        code_challenge_method="S256", state="rt", scope="mcp", resource=gateway.mcp_url))
    query = redirect_params(response, CALLBACK)
    # RFC 6749 4.1.2.1 names it unsupported_response_type; the design note says invalid_request
    assert query.get("error") in ("unsupported_response_type", "invalid_request") and "code" not in query, query
    assert query.get("state") == "rt" and query.get("iss") == gateway.base_url, query


async def test_code_is_bound_to_its_resource(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    flow = await authorization_code(http, gateway, creds)  # resource /mcp
    response = await exchange(http, gateway, flow, resource=f"{gateway.base_url}/rec")
    assert response.status_code == 400 and response.json().get("error") in ("invalid_target", "invalid_grant"), describe(response)


async def test_wrong_code_verifier_is_invalid_grant(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    flow = await authorization_code(http, gateway, creds)
    other_verifier, _ = pkce_pair()
    assert_oauth_error(await exchange(http, gateway, flow, code_verifier=other_verifier), "invalid_grant")
    without = {"grant_type": "authorization_code", "code": flow.code, "redirect_uri": flow.redirect_uri,
               "client_id": flow.client_id, "resource": flow.resource}
    response = await token_request(http, gateway, without)
    assert response.status_code == 400 and response.json().get("error") in ("invalid_grant", "invalid_request"), describe(response)


# --- refusals: refresh tokens, client secrets, revocation ---------------------------------------


async def test_refresh_token_reuse_revokes_the_family(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    flow = await authorization_code(http, gateway, creds)
    first = tokens_of(await exchange(http, gateway, flow))
    rotated = tokens_of(await refresh(http, gateway, flow, first["refresh_token"]))
    assert rotated.get("refresh_token") and rotated["refresh_token"] != first["refresh_token"], "refresh tokens must rotate"
    await assert_token_works(http, gateway.mcp_url, rotated["access_token"])
    assert_oauth_error(await refresh(http, gateway, flow, first["refresh_token"]), "invalid_grant")
    assert_oauth_error(await refresh(http, gateway, flow, rotated["refresh_token"]), "invalid_grant")
    await assert_token_dies(http, gateway.mcp_url, rotated["access_token"], "after refresh token reuse revoked the family")


async def test_refresh_token_is_bound_to_its_client(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    flow = await authorization_code(http, gateway, creds)
    first = tokens_of(await exchange(http, gateway, flow))
    other = await register_public_client(http, gateway, [CALLBACK])
    response = await token_request(http, gateway, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                                                   "client_id": other, "resource": flow.resource})
    assert_oauth_error(response, "invalid_grant")


async def test_client_credentials_with_a_wrong_secret_is_invalid_client(gateway: Gateway, creds: Secrets,
                                                                         http: httpx2.AsyncClient) -> None:
    data = {"grant_type": "client_credentials", "scope": "mcp", "resource": gateway.mcp_url}
    response = await token_request(http, gateway, data, auth=(CI_BOT, creds.ci_bot_secret + "x"))
    assert_oauth_error(response, "invalid_client", statuses=(401,))
    response = await token_request(http, gateway, {**data, "client_id": CI_BOT, "client_secret": "wrong"})
    assert_oauth_error(response, "invalid_client", statuses=(400, 401))
    response = await token_request(http, gateway, data, auth=("nobody", creds.ci_bot_secret))
    assert_oauth_error(response, "invalid_client", statuses=(401,))
    public = await register_public_client(http, gateway, [CALLBACK])
    response = await token_request(http, gateway, {**data, "client_id": public})
    assert response.status_code in (400, 401) and response.json().get("error") in ("unauthorized_client", "invalid_client"), describe(response)
    # the right secret, both ways
    tokens_of(await token_request(http, gateway, data, auth=(CI_BOT, creds.ci_bot_secret)))
    tokens_of(await token_request(http, gateway, {**data, "client_id": CI_BOT, "client_secret": creds.ci_bot_secret}))


async def test_revoked_refresh_token_is_unusable(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    flow = await authorization_code(http, gateway, creds)
    first = tokens_of(await exchange(http, gateway, flow))
    response = await http.post(f"{gateway.base_url}/oauth/revoke", data={
        "token": first["refresh_token"], "token_type_hint": "refresh_token", "client_id": flow.client_id})
    assert response.status_code == 200, describe(response)
    assert_oauth_error(await refresh(http, gateway, flow, first["refresh_token"]), "invalid_grant")
    await assert_token_dies(http, gateway.mcp_url, first["access_token"], "after its refresh token was revoked")
    # RFC 7009 2.2: an unknown token is not an error
    response = await http.post(f"{gateway.base_url}/oauth/revoke", data={"token": "not-a-token", "client_id": flow.client_id})
    assert response.status_code == 200, describe(response)


# --- refusals: the consent page -------------------------------------------------------------


async def test_consent_post_needs_the_csrf_cookie_and_matching_token(gateway: Gateway, creds: Secrets,
                                                                    http: httpx2.AsyncClient) -> None:
    client_id = await register_public_client(http, gateway, [CALLBACK])
    _, challenge = pkce_pair()
    url = authorize_url(gateway, response_type="code", client_id=client_id, redirect_uri=CALLBACK,
                        code_challenge=challenge, code_challenge_method="S256", state="csrf-state", scope="mcp",
                        resource=gateway.mcp_url)
    page = parse_consent_page(await get_page(http, url))
    assert page.cookie, f"no gh_csrf cookie on the consent page: {page.set_cookie_headers}"
    cookie_line = next(line for line in page.set_cookie_headers if line.startswith("gh_csrf="))
    assert "httponly" in cookie_line.lower() and "samesite=strict" in cookie_line.lower(), cookie_line

    def no_code(response: httpx2.Response, what: str) -> None:
        assert response.status_code in (400, 403), f"{what}: {describe(response)}"
        assert "code=" not in response.headers.get("location", ""), f"{what}: {describe(response)}"

    no_code(await submit(http, page, password=creds.alice_password, cookie=None), "no cookie")
    no_code(await submit(http, page, password=creds.alice_password, csrf=page.csrf + "x"), "csrf field mismatch")
    no_code(await submit(http, page, password=creds.alice_password, cookie=page.cookie + "x"), "cookie mismatch")
    other = parse_consent_page(await get_page(http, url))  # another page's pair does not mix with this one's
    no_code(await submit(http, page, password=creds.alice_password, cookie=other.cookie), "another page's cookie")
    # the untouched pair still works
    params = redirect_params(await submit(http, other, password=creds.alice_password), CALLBACK)
    assert params.get("code") and params.get("state") == "csrf-state", params


async def test_consent_page_cannot_be_framed(gateway: Gateway, http: httpx2.AsyncClient) -> None:
    client_id = await register_public_client(http, gateway, [CALLBACK])
    _, challenge = pkce_pair()
    response = await get_page(http, authorize_url(
        gateway, response_type="code", client_id=client_id, redirect_uri=CALLBACK, code_challenge=challenge,
        code_challenge_method="S256", state="f", scope="mcp", resource=gateway.mcp_url))
    parse_consent_page(response)
    xfo = response.headers.get("x-frame-options", "")
    csp = response.headers.get("content-security-policy", "")
    assert xfo.upper() == "DENY" or "frame-ancestors 'none'" in csp, f"X-Frame-Options={xfo!r} CSP={csp!r}"


async def test_consent_page_escapes_client_metadata(gateway: Gateway, http: httpx2.AsyncClient) -> None:
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    response = await http.post(f"{gateway.base_url}/oauth/register", json={
        "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": name,
        "grant_types": ["authorization_code"], "response_types": ["code"]})
    assert response.status_code == 201, describe(response)
    _, challenge = pkce_pair()
    page = await get_page(http, authorize_url(
        gateway, response_type="code", client_id=response.json()["client_id"], redirect_uri=CALLBACK,
        code_challenge=challenge, code_challenge_method="S256", state="x", scope="mcp", resource=gateway.mcp_url))
    parse_consent_page(page)
    assert "<script>" not in page.text and "<img" not in page.text, page.text[:3000]


@pytest.mark.parametrize("redirect_uri", ["http://evil.example/callback", "javascript:alert(1)", "https://a.example/cb#frag"])
async def test_registration_refuses_unsafe_redirect_uris(gateway: Gateway, http: httpx2.AsyncClient, redirect_uri: str) -> None:
    response = await http.post(f"{gateway.base_url}/oauth/register", json={
        "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"})
    assert_oauth_error(response, "invalid_redirect_uri")


async def test_wrong_password_and_deny_issue_no_code(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    client_id = await register_public_client(http, gateway, [CALLBACK])
    _, challenge = pkce_pair()
    url = authorize_url(gateway, response_type="code", client_id=client_id, redirect_uri=CALLBACK,
                        code_challenge=challenge, code_challenge_method="S256", state="d", scope="mcp",
                        resource=gateway.mcp_url)
    page = parse_consent_page(await get_page(http, url))
    response = await submit(http, page, password=creds.alice_password + "nope")
    assert response.status_code in (200, 401) and "location" not in response.headers, describe(response)
    again = FormParser()
    again.feed(response.text)
    assert "password" in again.inputs, f"the login form is not shown again: {response.text[:2000]}"
    page = parse_consent_page(await get_page(http, url))
    params = redirect_params(await submit(http, page, password=creds.alice_password, decision="deny"), CALLBACK)
    assert params.get("error") == "access_denied" and "code" not in params, params
    assert params.get("state") == "d" and params.get("iss") == gateway.base_url, params


async def test_sign_in_form_is_single_use(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    client_id = await register_public_client(http, gateway, [CALLBACK])
    _, challenge = pkce_pair()
    url = authorize_url(gateway, response_type="code", client_id=client_id, redirect_uri=CALLBACK,
                        code_challenge=challenge, code_challenge_method="S256", state="once", scope="mcp",
                        resource=gateway.mcp_url)
    page = parse_consent_page(await get_page(http, url))
    params = redirect_params(await submit(http, page, password=creds.alice_password), CALLBACK)
    assert params.get("code"), params
    replay = await submit(http, page, password=creds.alice_password)
    assert replay.status_code == 400 and "location" not in replay.headers, f"a replayed form got: {describe(replay)}"
    assert "already submitted" in replay.text, describe(replay)


async def test_anonymous_registration_cannot_create_a_machine_client(gateway: Gateway, http: httpx2.AsyncClient) -> None:
    """The reported attack: self-registering a client_credentials client, then minting tokens."""
    response = await http.post(f"{gateway.base_url}/oauth/register", json={
        "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"})
    assert_oauth_error(response, "invalid_client_metadata")
    body = response.json()
    assert "client_id" not in body and "client_secret" not in body, body
    assert "initial access token" in body.get("error_description", ""), body
    response = await http.post(f"{gateway.base_url}/oauth/register", json={
        "grant_types": ["authorization_code", "client_credentials"], "redirect_uris": [CALLBACK],
        "token_endpoint_auth_method": "client_secret_post"})
    assert_oauth_error(response, "invalid_client_metadata")


INITIAL_ACCESS_TOKEN = "e2e-initial-access-token-" + secrets.token_hex(8)


async def test_initial_access_token_registers_machine_clients(log_dir: Path, creds: Secrets, upstreams: Upstreams,
                                                              http: httpx2.AsyncClient) -> None:
    env_name = "GH_E2E_INITIAL_ACCESS_TOKEN"
    gw = start_auth_gateway(log_dir, "auth-gateway-iat", creds, upstreams.servers(), ENDPOINTS,
                            registration={"initialAccessToken": {"valueFrom": {"env": env_name}}})
    try:
        body = {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic", "scope": "mcp"}
        assert_oauth_error(await http.post(f"{gw.base_url}/oauth/register", json=body), "invalid_token", (401,))
        response = await http.post(f"{gw.base_url}/oauth/register", json=body,
                                   headers={"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"})
        assert response.status_code == 201, describe(response)
        info = response.json()
        auth = (info["client_id"], info["client_secret"])
        token = tokens_of(await token_request(http, gw, {"grant_type": "client_credentials", "resource": gw.mcp_url}, auth=auth))
        assert jwt_claims(token["access_token"])["scope"] == "mcp"
        await assert_token_works(http, gw.mcp_url, token["access_token"])
        wider = await token_request(http, gw, {"grant_type": "client_credentials", "scope": "mcp other"}, auth=auth)
        assert_oauth_error(wider, "invalid_scope")
    finally:
        gw.proc.stop()


async def test_failed_sign_ins_are_throttled(log_dir: Path, creds: Secrets, upstreams: Upstreams,
                                             http: httpx2.AsyncClient) -> None:
    """Five wrong passwords lock the account: 429 with Retry-After, even for the right password."""
    gw = start_auth_gateway(log_dir, "auth-gateway-throttle", creds, upstreams.servers(), ENDPOINTS)
    try:
        client_id = await register_public_client(http, gw, [CALLBACK])
        _, challenge = pkce_pair()
        url = authorize_url(gw, response_type="code", client_id=client_id, redirect_uri=CALLBACK,
                            code_challenge=challenge, code_challenge_method="S256", state="t", scope="mcp",
                            resource=gw.mcp_url)
        page = parse_consent_page(await get_page(http, url))
        for attempt in range(1, 6):
            response = await submit(http, page, password=f"guess {attempt}")
            expected = 401 if attempt < 5 else 429
            assert response.status_code == expected, f"attempt {attempt}: {describe(response)}"
            assert "location" not in response.headers, describe(response)
            fresh = FormParser()
            fresh.feed(response.text)
            page = ConsentPage(response=response, csrf=page.csrf, request=fresh.inputs["request"], cookie=page.cookie,
                               action=page.action)
        response = await submit(http, page, password=creds.alice_password)
        assert response.status_code == 429, f"the right password during the lockout: {describe(response)}"
        assert int(response.headers.get("retry-after", "0")) > 0, describe(response)
        assert "Too many failed sign-in attempts" in response.text, describe(response)
    finally:
        gw.proc.stop()


# --- refusals: the protected resource -------------------------------------------------------


async def test_no_token_gets_401_with_resource_metadata(gateway: Gateway, http: httpx2.AsyncClient) -> None:
    reply = await mcp_call(http, gateway.mcp_url, None)
    assert reply.status == 401, reply.describe()
    challenge = reply.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer"), challenge
    prm_url = f"{gateway.base_url}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{prm_url}"' in challenge, challenge
    assert 'scope="mcp"' in challenge, challenge
    assert reply.error["code"] == -32600 and reply.response.get("id") is None, reply.describe()
    reply = await mcp_call(http, gateway.mcp_url, "not-a-token")
    assert reply.status == 401, reply.describe()
    assert 'error="invalid_token"' in reply.headers.get("www-authenticate", ""), reply.describe()


async def test_token_in_query_string_is_400(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    token = tokens_of(await token_request(http, gateway, {"grant_type": "client_credentials", "scope": "mcp",
                                                          "resource": gateway.mcp_url}, auth=(CI_BOT, creds.ci_bot_secret)))["access_token"]
    await assert_token_works(http, gateway.mcp_url, token)
    for header_token in (None, token):
        reply = await mcp_call(http, gateway.mcp_url, header_token, query=f"?access_token={token}")
        assert reply.status == 400, reply.describe()
        assert "invalid_request" in reply.headers.get("www-authenticate", "") + reply.raw.decode(errors="replace"), reply.describe()


async def test_missing_scope_is_403_insufficient_scope(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    # /strict needs mcp and other; a token with mcp only
    strict = f"{gateway.base_url}/strict"
    token = tokens_of(await token_request(http, gateway, {"grant_type": "client_credentials", "scope": "mcp",
                                                          "resource": strict}, auth=(CI_BOT, creds.ci_bot_secret)))["access_token"]
    reply = await mcp_call(http, strict, token)
    assert reply.status == 403, reply.describe()
    challenge = reply.headers.get("www-authenticate", "")
    assert 'error="insufficient_scope"' in challenge and "resource_metadata=" in challenge, challenge
    assert 'scope="mcp other"' in challenge or 'scope="other mcp"' in challenge, challenge
    # /mcp needs mcp; a token with other only
    response = await token_request(http, gateway, {"grant_type": "client_credentials", "scope": "other",
                                                   "resource": gateway.mcp_url}, auth=(CI_BOT, creds.ci_bot_secret))
    if response.status_code == 400 and response.json().get("error") == "invalid_scope":
        return  # the AS may refuse a scope the resource does not use; /strict covered the 403
    token = tokens_of(response)["access_token"]
    reply = await mcp_call(http, gateway.mcp_url, token)
    assert reply.status == 403, reply.describe()
    challenge = reply.headers.get("www-authenticate", "")
    assert 'error="insufficient_scope"' in challenge and 'scope="mcp"' in challenge, challenge


async def test_token_for_another_endpoint_is_refused(gateway: Gateway, creds: Secrets, http: httpx2.AsyncClient) -> None:
    token = tokens_of(await token_request(http, gateway, {"grant_type": "client_credentials", "scope": "mcp",
                                                          "resource": f"{gateway.base_url}/rec"}, auth=(CI_BOT, creds.ci_bot_secret)))["access_token"]
    reply = await mcp_call(http, gateway.mcp_url, token)
    assert reply.status == 401 and 'error="invalid_token"' in reply.headers.get("www-authenticate", ""), reply.describe()


async def test_upstream_never_sees_the_clients_token(gateway: Gateway, creds: Secrets, upstreams: Upstreams,
                                                     http: httpx2.AsyncClient) -> None:
    rec = f"{gateway.base_url}/rec"
    token = tokens_of(await token_request(http, gateway, {"grant_type": "client_credentials", "scope": "mcp",
                                                          "resource": rec}, auth=(CI_BOT, creds.ci_bot_secret)))["access_token"]
    before = upstreams.rec_log.read_text().count("\n") if upstreams.rec_log.exists() else 0
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=60),
                                  trust_env=False) as hc:
        assert await run_sdk_session("session-2025-11-25", rec, hc) == "through oauth"
        assert await run_sdk_session("stateless-2026-07-28", rec, hc) == "through oauth"
    lines = upstreams.rec_log.read_text().splitlines()[before:]
    assert lines, "the recording upstream saw no request"
    signature = token.split(".")[-1]
    for line in lines:
        entry = json.loads(line)
        for name, value in entry["headers"]:
            assert token not in value and signature not in value, f"the client's token reached the upstream in {name}: {entry}"
            if name.lower() == "authorization":
                assert value != f"Bearer {token}", entry


# --- Client ID Metadata Documents -------------------------------------------------------------


class MetadataServer:
    """A tiny HTTP server for client metadata documents; counts the requests it gets."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.hits.append(self.path)
                doc = server.documents.get(self.path)
                body = json.dumps(doc).encode() if doc is not None else b"not found"
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json" if doc is not None else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def metadata_server() -> Iterator[MetadataServer]:
    server = MetadataServer()
    good = server.url("/client.json")
    document = {
        "client_name": "gatehouse e2e (CIMD)",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    server.documents["/client.json"] = {"client_id": good, **document}
    server.documents["/mismatch.json"] = {"client_id": good, **document}  # names another URL
    yield server
    server.close()


def cimd_authorize(gw: Gateway, client_id: str, challenge: str, state: str = "cimd") -> str:
    return authorize_url(gw, response_type="code", client_id=client_id, redirect_uri=CALLBACK, code_challenge=challenge,
                         code_challenge_method="S256", state=state, scope="mcp", resource=gw.mcp_url)


async def test_cimd_client_is_accepted_with_private_addresses_allowed(private_gateway: Gateway, creds: Secrets,
                                                                     metadata_server: MetadataServer,
                                                                     http: httpx2.AsyncClient) -> None:
    gw = private_gateway
    client_id = metadata_server.url("/client.json")
    verifier, challenge = pkce_pair()
    response = await get_page(http, cimd_authorize(gw, client_id, challenge))
    assert "/client.json" in metadata_server.hits, "the gateway did not fetch the metadata document"
    page = parse_consent_page(response)
    params = redirect_params(await submit(http, page, password=creds.alice_password), CALLBACK)
    assert params.get("code") and params.get("state") == "cimd" and params.get("iss") == gw.base_url, params
    flow = Flow(client_id=client_id, redirect_uri=CALLBACK, verifier=verifier, code=params["code"], state="cimd",
                resource=gw.mcp_url)
    body = tokens_of(await exchange(http, gw, flow))
    assert jwt_claims(body["access_token"])["client_id"] == client_id
    await assert_token_works(http, gw.mcp_url, body["access_token"])
    # a redirect_uri the document does not list
    response = await get_page(http, authorize_url(
        gw, response_type="code", client_id=client_id, redirect_uri=CALLBACK_2, code_challenge=challenge,
        code_challenge_method="S256", state="x", scope="mcp", resource=gw.mcp_url))
    assert response.status_code == 400 and "location" not in response.headers, describe(response)


async def test_cimd_document_naming_another_client_id_is_refused(private_gateway: Gateway,
                                                                 metadata_server: MetadataServer,
                                                                 http: httpx2.AsyncClient) -> None:
    _, challenge = pkce_pair()
    response = await get_page(http, cimd_authorize(private_gateway, metadata_server.url("/mismatch.json"), challenge))
    assert response.status_code == 400 and "location" not in response.headers, describe(response)
    response = await get_page(http, cimd_authorize(private_gateway, metadata_server.url("/missing.json"), challenge))
    assert response.status_code == 400 and "location" not in response.headers, describe(response)


async def test_cimd_document_with_an_unsafe_redirect_uri_is_refused(private_gateway: Gateway, creds: Secrets,
                                                                   metadata_server: MetadataServer,
                                                                   http: httpx2.AsyncClient) -> None:
    """A metadata document's redirect_uris follow the registration rules (no plain http off loopback)."""
    evil = "http://evil.example/callback"
    client_id = metadata_server.url("/unsafe-redirect.json")
    metadata_server.documents["/unsafe-redirect.json"] = {
        "client_id": client_id, "client_name": "unsafe", "redirect_uris": [evil], "token_endpoint_auth_method": "none"}
    _, challenge = pkce_pair()
    response = await get_page(http, authorize_url(
        private_gateway, response_type="code", client_id=client_id, redirect_uri=evil, code_challenge=challenge,
        code_challenge_method="S256", state="u", scope="mcp", resource=private_gateway.mcp_url))
    assert response.status_code == 400 and "location" not in response.headers, describe(response)
    assert "http is only allowed for loopback hosts" in response.text, describe(response)


async def test_cimd_client_cannot_use_client_credentials(private_gateway: Gateway, metadata_server: MetadataServer,
                                                         http: httpx2.AsyncClient) -> None:
    client_id = metadata_server.url("/machine.json")
    metadata_server.documents["/machine.json"] = {
        "client_id": client_id, "redirect_uris": [CALLBACK], "grant_types": ["client_credentials", "authorization_code"],
        "token_endpoint_auth_method": "none"}
    response = await token_request(http, private_gateway, {"grant_type": "client_credentials", "client_id": client_id,
                                                           "resource": private_gateway.mcp_url})
    assert_oauth_error(response, "unauthorized_client")


# IPv6 forms that carry a loopback, private or metadata IPv4 address inside.
EMBEDDED_IPV4_CLIENT_IDS = [
    "https://[64:ff9b::7f00:1]/client.json",  # NAT64 of 127.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/client.json",  # NAT64 of 169.254.169.254
    "https://[2002:7f00:1::1]/client.json",  # 6to4 of 127.0.0.1
    "https://[2002:a00:1::1]/client.json",  # 6to4 of 10.0.0.1
    "https://[::7f00:1]/client.json",  # IPv4-compatible 127.0.0.1
    "https://[::ffff:0:a00:1]/client.json",  # IPv4-translated 10.0.0.1
]


@pytest.mark.parametrize("client_id", EMBEDDED_IPV4_CLIENT_IDS)
async def test_cimd_ipv6_with_an_internal_ipv4_inside_is_refused(gateway: Gateway, http: httpx2.AsyncClient,
                                                                 client_id: str) -> None:
    _, challenge = pkce_pair()
    response = await get_page(http, cimd_authorize(gateway, client_id, challenge))
    assert response.status_code == 400 and "location" not in response.headers, describe(response)
    assert "internal address" in response.text, f"{client_id} was not refused for its address: {describe(response)}"


PRIVATE_CLIENT_IDS = [
    "http://127.0.0.1:{port}/client.json",  # served and valid: refused for the address, never fetched
    "https://127.0.0.1/client.json",
    "https://10.0.0.1/client.json",
    "https://169.254.169.254/latest/client.json",
    "https://[::1]/client.json",
    "http://[::1]:{port}/client.json",
    "https://localhost/client.json",  # a name that resolves to loopback
    "http://example.com/client.json",  # public, but not https
]


@pytest.mark.parametrize("template", PRIVATE_CLIENT_IDS)
async def test_cimd_private_or_non_https_client_id_is_refused(gateway: Gateway, metadata_server: MetadataServer,
                                                              http: httpx2.AsyncClient, template: str) -> None:
    client_id = template.format(port=metadata_server.port)
    hits = len(metadata_server.hits)
    _, challenge = pkce_pair()
    started = time.monotonic()
    response = await get_page(http, cimd_authorize(gateway, client_id, challenge))
    assert response.status_code == 400, f"client_id {client_id}: {describe(response)}"
    assert "location" not in response.headers, describe(response)
    assert len(metadata_server.hits) == hits, f"the gateway fetched {client_id} although private addresses are not allowed"
    assert time.monotonic() - started < 10, f"refusing {client_id} took {time.monotonic() - started:.1f} s"


# --- storage: a restart keeps the state; SIGTERM exits cleanly ---------------------------------


def stop_with_sigterm(gw: Gateway) -> tuple[int, float]:
    gw.proc.popen.send_signal(signal.SIGTERM)
    start = time.monotonic()
    try:
        code = gw.proc.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the gateway did not exit within 10 s of SIGTERM\n{gw.describe()}", pytrace=False)
    return code, time.monotonic() - start


async def test_sigterm_exits_cleanly_with_sqlite_storage(scratch_dir: Path, creds: Secrets, upstreams: Upstreams,
                                                        http: httpx2.AsyncClient) -> None:
    gw = start_auth_gateway(scratch_dir, "gw-sigterm", creds, upstreams.servers(), ENDPOINTS)
    try:
        flow = await authorization_code(http, gw, creds)
        await assert_token_works(http, gw.mcp_url, tokens_of(await exchange(http, gw, flow))["access_token"])
        code, took = stop_with_sigterm(gw)
        output = gw.proc.output()
        assert code == 0 and "Assertion failed" not in output, (
            f"exit code {code} {took:.1f} s after SIGTERM (the store in use was SQLite)\n{gw.describe()}")
    finally:
        gw.proc.stop()


async def test_state_survives_a_restart(scratch_dir: Path, creds: Secrets, upstreams: Upstreams,
                                        http: httpx2.AsyncClient) -> None:
    """Signing keys, registered clients and refresh tokens live in the store, not in memory."""
    gw = start_auth_gateway(scratch_dir, "gw-restart", creds, upstreams.servers(), ENDPOINTS)
    try:
        flow = await authorization_code(http, gw, creds)
        before = tokens_of(await exchange(http, gw, flow))
        await assert_token_works(http, gw.mcp_url, before["access_token"])
    finally:
        gw.proc.stop()
    gw = start_auth_gateway(scratch_dir, "gw-restart", creds, upstreams.servers(), ENDPOINTS, port=gw.port)
    try:
        await assert_token_works(http, gw.mcp_url, before["access_token"])  # the same signing key
        after = tokens_of(await refresh(http, gw, flow, before["refresh_token"]))  # the same refresh token
        await assert_token_works(http, gw.mcp_url, after["access_token"])
        again = await authorization_code(http, gw, creds, client_id=flow.client_id)  # the same registered client
        tokens_of(await exchange(http, gw, again))
    finally:
        gw.proc.stop()
