"""The gateway as an OAuth resource server: which bearer tokens and API keys it takes, which it refuses, how.

A test issuer (jwt_issuer.TestIssuer: discovery + JWKS with an RS256, an ES256 and an EdDSA key,
served from a thread of this process) signs the tokens; the gateway trusts it through
`spec.auth.issuers` with `clockSkewSeconds: 5` and fronts the stdio demo server at `/mcp` with
`auth: {mode: required, scopes: [mcp]}`. See /work/notes/auth-design.md (docs: the auth section
of docs/configuration.md once it exists).

Two kinds of gateway:
- `gw`: one gateway for the module (refusals, scopes, metadata); every refusal is followed by a
  valid request, and the module ends by checking the gateway still serves.
- `gateway`: a fresh issuer + gateway per test (`cacheSeconds: 1`), for JWKS fetch counting,
  key rotation, an issuer that fails, and API keys.
Both names are the ones conftest's report hook looks for, so a failure shows the gateway's output.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
import wire
from conftest import GATEHOUSE_BIN, UPSTREAM_NAME, Gateway, Proc, _yaml, free_port, require_binary, stdio_demo, wait_http_200
from jwt_issuer import TestIssuer, hs256_token, new_key, unsigned_token

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

SKEW = 5
SCOPE = "mcp"
ALGS = ("RS256", "ES256", "EdDSA")


# --- the gateway under test -------------------------------------------------------------------


@dataclass
class AuthGateway(Gateway):
    issuer: TestIssuer | None = None

    @property
    def resource(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/.well-known/oauth-protected-resource/mcp"

    def token(self, **kwargs: Any) -> str:
        """A valid token for this gateway (RS256, scope mcp) unless kwargs say otherwise."""
        assert self.issuer is not None
        kwargs.setdefault("scope", SCOPE)
        aud = kwargs.pop("aud", self.resource)
        return self.issuer.mint(aud, **kwargs)

    def describe(self) -> str:
        issuer = f"\n--- test issuer requests ---\n{self.issuer.log()}" if self.issuer else ""
        return super().describe() + issuer


def auth_config(
    port: int,
    issuer: TestIssuer,
    log_dir: Path,
    auth_extra: dict[str, Any] | None = None,
    issuer_extra: dict[str, Any] | None = None,
) -> str:
    """The Gateway + MCPServer documents; `issuer_extra` changes the issuer entry (None drops a key)."""
    resource = f"http://127.0.0.1:{port}/mcp"
    entry: dict[str, Any] = {"issuer": issuer.issuer, "audiences": [resource], **(issuer_extra or {})}
    auth: dict[str, Any] = {
        "clockSkewSeconds": SKEW,
        "issuers": [{k: v for k, v in entry.items() if v is not None}],
    }
    auth.update(auth_extra or {})
    gateway = {
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "Gateway",
        "metadata": {"name": "auth-e2e"},
        "spec": {
            "listen": {"bind": "127.0.0.1", "port": port},
            "storage": {"sqlite": {"path": str(log_dir / "gatehouse.db")}},
            "auth": auth,
            "endpoints": [{"path": "/mcp", "servers": [UPSTREAM_NAME], "auth": {"mode": "required", "scopes": [SCOPE]}}],
        },
    }
    server = {
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": UPSTREAM_NAME},
        "spec": {**stdio_demo(log_dir).spec, "timeouts": {"requestSeconds": 10}},
    }
    return _yaml(gateway) + "\n---\n" + _yaml(server) + "\n"


def start_auth_gateway(
    log_dir: Path,
    issuer: TestIssuer,
    name: str = "gateway",
    auth_extra: dict[str, Any] | None = None,
    issuer_extra: dict[str, Any] | None = None,
) -> AuthGateway:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    port = free_port()
    config_path = log_dir / f"{name}.yaml"
    config_path.write_text(auth_config(port, issuer, log_dir, auth_extra, issuer_extra))
    proc = Proc(name, [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], log_dir)
    gw = AuthGateway(port=port, config_path=config_path, proc=proc, issuer=issuer)
    try:
        wait_http_200(proc, f"{gw.base_url}/readyz", context=f"--- {config_path} ---\n{config_path.read_text()}")
    except BaseException:
        proc.stop()
        raise
    return gw


@pytest.fixture(scope="module")
def shared_gw(log_root: Path) -> Iterator[AuthGateway]:
    log_dir = log_root / "auth_tokens"
    log_dir.mkdir(exist_ok=True)
    issuer = TestIssuer()
    try:
        gw = start_auth_gateway(log_dir, issuer)
        yield gw
        gw.proc.stop()
    finally:
        issuer.close()


@pytest.fixture
def gw(shared_gw: AuthGateway) -> AuthGateway:
    """The module's gateway (overrides conftest's `gw`)."""
    if shared_gw.proc.popen.poll() is not None:
        pytest.fail(f"the gateway died before this test\n{shared_gw.describe()}", pytrace=False)
    return shared_gw


@pytest.fixture
def gateway(scratch_dir: Path) -> Iterator[AuthGateway]:
    """A fresh issuer and gateway for this test alone (overrides conftest's `gateway`)."""
    issuer = TestIssuer()
    try:
        gw = start_auth_gateway(scratch_dir, issuer, auth_extra={"cacheSeconds": 1})
        yield gw
        gw.proc.stop()
    finally:
        issuer.close()


# --- requests and checks ----------------------------------------------------------------------


async def discover(
    http: httpx2.AsyncClient,
    gw: AuthGateway,
    token: str | None = None,
    *,
    authorization: str | None = None,
    query: str = "",
) -> wire.Reply:
    """A 2026-07-28 server/discover with `Authorization: Bearer <token>` (or the given header value)."""
    message = wire.modern_request("server/discover")
    headers = wire.modern_headers(message)
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await wire.post(http, gw.mcp_url + query, message, headers)


def assert_ok(reply: wire.Reply, what: str) -> None:
    assert reply.status == 200, f"{what}: expected 200, got {reply.describe()}"
    assert reply.result.get("resultType") == "complete", f"{what}: {reply.describe()}"


async def assert_serving(http: httpx2.AsyncClient, gw: AuthGateway, what: str = "after the refused request") -> None:
    assert gw.proc.popen.poll() is None, f"the gateway exited {what}\n{gw.describe()}"
    assert_ok(await discover(http, gw, gw.token()), f"a valid token {what}")


_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')


def challenge(reply: wire.Reply) -> dict[str, str]:
    """The parameters of the Bearer challenge in WWW-Authenticate (RFC 6750 §3)."""
    values = reply.headers.get_list("www-authenticate")
    assert values, f"no WWW-Authenticate header: {reply.describe()}"
    bearer = [v for v in values if v.strip().lower().startswith("bearer")]
    assert bearer, f"WWW-Authenticate is not a Bearer challenge: {values!r}"
    rest = bearer[0].strip()[len("bearer") :]
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return params


def assert_invalid_token(reply: wire.Reply, gw: AuthGateway, what: str) -> None:
    assert reply.status == 401, f"{what}: expected 401 invalid_token, got {reply.describe()}"
    params = challenge(reply)
    assert params.get("error") == "invalid_token", f"{what}: expected error=\"invalid_token\", got {params!r}"
    assert params.get("resource_metadata") == gw.metadata_url, f"{what}: resource_metadata {params!r}, want {gw.metadata_url}"


def assert_insufficient_scope(reply: wire.Reply, gw: AuthGateway, what: str) -> None:
    assert reply.status == 403, f"{what}: expected 403 insufficient_scope, got {reply.describe()}"
    params = challenge(reply)
    assert params.get("error") == "insufficient_scope", f"{what}: {params!r}"
    assert SCOPE in params.get("scope", "").split(), f"{what}: the challenge should name scope mcp: {params!r}"
    assert params.get("resource_metadata") == gw.metadata_url, f"{what}: {params!r}"


# --- tokens the gateway takes -------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
async def test_valid_token_accepted(gw: AuthGateway, alg: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            assert_ok(await discover(http, gw, gw.token(alg=alg)), f"server/discover with a valid {alg} token")


@pytest.mark.parametrize("alg", ALGS)
async def test_valid_token_session_era(gw: AuthGateway, alg: str) -> None:
    """2025-11-25: initialize, initialized, tools/call, each with the token; without it → 401."""
    auth = {"Authorization": f"Bearer {gw.token(alg=alg)}"}
    init = wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await wire.post(http, gw.mcp_url, init, auth)
            assert reply.status == 200, f"initialize with a valid {alg} token: {reply.describe()}"
            assert reply.result.get("protocolVersion") == "2025-11-25", reply.describe()
            session_id = reply.headers.get(wire.SESSION_HEADER)
            assert session_id, reply.describe()
            session = {wire.SESSION_HEADER: session_id, wire.VERSION_HEADER: "2025-11-25"}
            note = await wire.post(http, gw.mcp_url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, {**session, **auth})
            assert note.status == 202, note.describe()
            call = wire.request("tools/call", {"name": "echo", "arguments": {"message": "authorized"}})
            reply = await wire.post(http, gw.mcp_url, call, {**session, **auth})
            assert reply.status == 200, reply.describe()
            assert reply.result["content"][0]["text"] == "authorized", reply.describe()
            # A session id is not a credential: every request needs the token.
            reply = await wire.post(http, gw.mcp_url, wire.request("tools/list", {}), session)
            assert reply.status == 401, f"tools/list in an authorized session but without a token: {reply.describe()}"
            await http.delete(gw.mcp_url, headers={**session, **auth})


async def test_expired_within_skew_accepted(gw: AuthGateway) -> None:
    now = int(time.time())
    async with wire.client() as http:
        with anyio.fail_after(15):
            token = gw.token(exp=now - 2, iat=now - 300, nbf=now - 300)
            assert_ok(await discover(http, gw, token), f"exp 2 s ago, clockSkewSeconds {SKEW}")
            token = gw.token(nbf=now + 2)
            assert_ok(await discover(http, gw, token), f"nbf 2 s ahead, clockSkewSeconds {SKEW}")


async def test_at_jwt_typ_accepted(gw: AuthGateway) -> None:
    """RFC 9068 access tokens carry `typ: at+jwt`."""
    async with wire.client() as http:
        with anyio.fail_after(15):
            token = gw.token(headers={"typ": "at+jwt"})
            assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
            assert_ok(await discover(http, gw, token), "a token with typ at+jwt")


async def test_audience_list_containing_the_resource_accepted(gw: AuthGateway) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            token = gw.token(aud=["https://other.example/api", gw.resource])
            assert_ok(await discover(http, gw, token), "aud: [other, the resource]")


async def test_lowercase_bearer_scheme_accepted(gw: AuthGateway) -> None:
    """Auth schemes are case-insensitive (RFC 9110 §11.1)."""
    async with wire.client() as http:
        with anyio.fail_after(15):
            assert_ok(await discover(http, gw, authorization=f"bearer {gw.token()}"), "Authorization: bearer <token>")


async def test_cached_token_refused_once_expired(gw: AuthGateway) -> None:
    """The validated-token cache (cacheSeconds, 30 by default) never outlives the token's exp."""
    token = gw.token(exp=_now() + 2)
    async with wire.client() as http:
        with anyio.fail_after(30):
            assert_ok(await discover(http, gw, token), "a token valid for 2 s more (+5 s skew)")
            await anyio.sleep(2 + SKEW + 2)
            assert_invalid_token(await discover(http, gw, token), gw, "the same token, now past exp + skew")


async def test_two_authorization_headers(gw: AuthGateway) -> None:
    """A valid and a bogus Authorization header together are not let through."""
    message = wire.modern_request("server/discover")
    headers = [(k, v) for k, v in wire.modern_headers(message).items()]
    headers += [("Accept", wire.ACCEPT), ("Content-Type", "application/json")]
    async with wire.client() as http:
        with anyio.fail_after(15):
            for pair in ((f"Bearer {gw.token()}", "Bearer not-a-jwt"), ("Bearer not-a-jwt", f"Bearer {gw.token()}")):
                both = headers + [("Authorization", pair[0]), ("Authorization", pair[1])]
                response = await http.post(gw.mcp_url, content=json.dumps(message).encode(), headers=both)
                assert response.status_code in (400, 401), (
                    f"two Authorization headers {[p[:20] for p in pair]}: HTTP {response.status_code} {response.text[:300]}"
                )
            await assert_serving(http, gw, "after two Authorization headers")


# --- tokens the gateway refuses (401 invalid_token) -------------------------------------------


def _now() -> int:
    return int(time.time())


def _claims(gw: AuthGateway, **extra: Any) -> dict[str, Any]:
    assert gw.issuer
    return gw.issuer.claims(gw.resource, scope=SCOPE, **extra)


def _rsa(gw: AuthGateway) -> Any:
    assert gw.issuer
    return gw.issuer.key("RS256")


REFUSED: dict[str, Callable[[AuthGateway], str]] = {
    "expired": lambda gw: gw.token(exp=_now() - 60, iat=_now() - 600, nbf=_now() - 600),
    "expired-just-past-skew": lambda gw: gw.token(exp=_now() - (SKEW + 10), iat=_now() - 600, nbf=_now() - 600),
    "not-yet-valid": lambda gw: gw.token(nbf=_now() + 60),
    "wrong-issuer": lambda gw: gw.token(iss=gw.issuer.base_url + "/other"),  # type: ignore[union-attr]
    "wrong-audience": lambda gw: gw.token(aud=f"{gw.base_url}/other"),
    "audience-of-another-gateway": lambda gw: gw.token(aud="http://127.0.0.1:1/mcp"),
    "missing-audience": lambda gw: gw.token(aud=None),
    "missing-exp": lambda gw: gw.token(exp=None),
    "exp-is-a-string": lambda gw: gw.token(exp=str(_now() + 300)),
    "alg-none": lambda gw: unsigned_token({"alg": "none", "typ": "JWT", "kid": _rsa(gw).kid}, _claims(gw)),
    "alg-NONE": lambda gw: unsigned_token({"alg": "NONE", "typ": "JWT"}, _claims(gw)),
    "hs256-with-rsa-public-pem": lambda gw: hs256_token(
        {"alg": "HS256", "typ": "JWT", "kid": _rsa(gw).kid}, _claims(gw), _rsa(gw).public_pem()
    ),
    "ps512": lambda gw: gw.token(alg="PS512", key=_rsa(gw)),
    "rs384": lambda gw: gw.token(alg="RS384", key=_rsa(gw)),
    "es256-header-on-the-rsa-kid": lambda gw: gw.token(alg="ES256", key=gw.issuer.key("ES256"), kid=_rsa(gw).kid),  # type: ignore[union-attr]
    "unknown-kid": lambda gw: gw.token(alg="ES256", key=new_key("ES256")),
    "known-kid-other-key": lambda gw: gw.token(alg="RS256", key=new_key("RS256", kid=_rsa(gw).kid)),
    "tampered-payload": lambda gw: _tampered(gw),
    "payload-not-an-object": lambda gw: jwt.api_jws.encode(
        b'["mcp"]', _rsa(gw).private, algorithm="RS256", headers={"kid": _rsa(gw).kid}
    ),
    "unknown-crit-header": lambda gw: gw.token(headers={"crit": ["x-e2e-critical"], "x-e2e-critical": True}),
    "header-not-json": lambda gw: "bm90IGpzb24." + gw.token().split(".", 1)[1],
    "deeply-nested-payload": lambda gw: _nested(gw, 10_000),
    "garbage": lambda gw: "not-a-jwt",
    "two-parts": lambda gw: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0",
    "bad-base64": lambda gw: "eyJ@@@.%%%.***",
    "four-parts": lambda gw: gw.token() + ".e30",
}


def _tampered(gw: AuthGateway) -> str:
    """A valid RS256 token whose payload is swapped for another (sub changed); signature kept."""
    head, _, signature = gw.token().split(".")
    body = jwt.utils.base64url_encode(json.dumps(_claims(gw, sub="admin")).encode()).decode()
    return f"{head}.{body}.{signature}"


def _nested(gw: AuthGateway, depth: int) -> str:
    """A token whose payload nests `depth` arrays (a parser's recursion), with a bogus signature."""
    header = jwt.utils.base64url_encode(json.dumps({"alg": "RS256", "typ": "JWT", "kid": _rsa(gw).kid}).encode()).decode()
    payload = ('{"iss":' + json.dumps(gw.issuer.issuer) + ',"x":' + "[" * depth + "]" * depth + "}").encode()  # type: ignore[union-attr]
    return f"{header}.{jwt.utils.base64url_encode(payload).decode()}.{jwt.utils.base64url_encode(b'x' * 256).decode()}"


@pytest.mark.parametrize("case", list(REFUSED))
async def test_invalid_token_refused(gw: AuthGateway, case: str) -> None:
    token = REFUSED[case](gw)
    async with wire.client() as http:
        with anyio.fail_after(20):
            reply = await discover(http, gw, token)
            assert_invalid_token(reply, gw, f"token case {case!r}")
            await assert_serving(http, gw, f"after token case {case!r}")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1e300},
        {"exp": 2**63},
        {"exp": 2**64 + 1},
        {"exp": -(2**63) - 1},
        {"nbf": -1e300},
        {"iat": 1e300},
        {"exp": 1.5e9 + 0.5},
    ],
    ids=["exp-1e300", "exp-2^63", "exp-2^64+1", "exp-below-int64", "nbf--1e300", "iat-1e300", "exp-fractional-past"],
)
async def test_extreme_numeric_claims(gw: AuthGateway, claims: dict[str, Any]) -> None:
    """Signed tokens with out-of-range times: taken or refused, never a crash or a 5xx."""
    token = gw.token(**claims)
    async with wire.client() as http:
        with anyio.fail_after(15):
            try:
                reply = await discover(http, gw, token)
            except httpx2.HTTPError as error:
                pytest.fail(f"claims {claims}: the connection failed ({type(error).__name__}: {error})\n{gw.describe()}")
            assert reply.status in (200, 401), f"claims {claims}: {reply.describe()}"
            if claims.get("exp") in (-(2**63) - 1, 1.5e9 + 0.5):
                assert_invalid_token(reply, gw, f"claims {claims} (expired)")
            await assert_serving(http, gw, f"after claims {claims}")


async def test_unknown_kid_still_refused_after_a_refresh(gw: AuthGateway) -> None:
    """The same unknown kid twice, 11 s apart (past any refetch interval): refused both times."""
    key = new_key("RS256")
    async with wire.client() as http:
        with anyio.fail_after(40):
            assert_invalid_token(await discover(http, gw, gw.token(key=key)), gw, "unknown kid, first time")
            await anyio.sleep(11)
            assert_invalid_token(await discover(http, gw, gw.token(key=key)), gw, "unknown kid, 11 s later")
            await assert_serving(http, gw)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b c"],
    ids=["bearer-no-token", "basic", "other-scheme", "bearer-with-spaces"],
)
async def test_malformed_authorization_header(gw: AuthGateway, authorization: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await discover(http, gw, authorization=authorization)
            assert reply.status in (400, 401), f"Authorization: {authorization!r}: expected 401 (or 400), got {reply.describe()}"
            params = challenge(reply)
            assert params.get("resource_metadata") == gw.metadata_url, f"Authorization: {authorization!r}: {params!r}"
            await assert_serving(http, gw, f"after Authorization: {authorization!r}")


async def test_huge_token(gw: AuthGateway) -> None:
    """A 100 KB bearer token: refused with 401, 431 or 400, and the gateway goes on serving."""
    token = gw.token() + "A" * 100_000
    async with wire.client() as http:
        with anyio.fail_after(20):
            try:
                reply = await discover(http, gw, token)
            except httpx2.HTTPError as error:
                pytest.fail(f"a 100 KB token: the connection failed ({type(error).__name__}: {error}) instead of 401/431/400")
            assert reply.status in (400, 401, 431), f"a 100 KB token: {reply.describe()[:600]}"
            await assert_serving(http, gw, "after a 100 KB token")


# --- no token, wrong scope, token in the query ------------------------------------------------


async def test_no_token(gw: AuthGateway) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await discover(http, gw)
            assert reply.status == 401, f"no Authorization header: {reply.describe()}"
            params = challenge(reply)
            assert params.get("resource_metadata") == gw.metadata_url, params
            assert params.get("scope") == SCOPE, f"the challenge should carry scope=\"mcp\": {params!r}"
            # RFC 6750 §3.1: no error code when the request carried no authentication at all.
            assert "error" not in params, f"a request without credentials should get no error code: {params!r}"
            assert reply.error, reply.describe()  # a JSON-RPC error body  # noqa: B018


async def test_refusal_bodies_are_json_rpc_errors(gw: AuthGateway) -> None:
    """401/403/400 bodies are JSON-RPC 2.0 error responses, `id` included (null when unknown, §5)."""
    assert gw.issuer
    async with wire.client() as http:
        with anyio.fail_after(15):
            cases = {
                "no token (401)": await discover(http, gw),
                "invalid token (401)": await discover(http, gw, "not-a-jwt"),
                "insufficient scope (403)": await discover(http, gw, gw.issuer.mint(gw.resource, scope="read")),
                "?access_token= (400)": await discover(http, gw, gw.token(), query="?access_token=x"),
            }
    problems = []
    for what, reply in cases.items():
        body = reply.response if reply.messages else None
        if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("error"), dict):
            problems.append(f"{what}: not a JSON-RPC error: {reply.raw[:300]!r}")
        elif "id" not in body:
            problems.append(f"{what}: no \"id\" member (JSON-RPC 2.0 §5 requires it; null here): {reply.raw[:300]!r}")
        elif not isinstance(body["error"].get("code"), int) or not isinstance(body["error"].get("message"), str):
            problems.append(f"{what}: malformed error object: {reply.raw[:300]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_no_token_other_methods(gw: AuthGateway, method: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            headers = {"Accept": "text/event-stream", wire.SESSION_HEADER: uuid.uuid4().hex, wire.VERSION_HEADER: "2025-11-25"}
            response = await http.request(method, gw.mcp_url, headers=headers)
            assert response.status_code == 401, f"{method} /mcp without a token: HTTP {response.status_code} {response.text[:300]}"
            assert "resource_metadata" in response.headers.get("www-authenticate", ""), dict(response.headers)


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("no-scope-claim", {}),
        ("other-scope", {"scope": "read write"}),
        ("scope-prefix", {"scope": "mcpx"}),
        ("scp-without-mcp", {"scp": ["read"]}),
    ],
)
async def test_insufficient_scope(gw: AuthGateway, case: str, claims: dict[str, Any]) -> None:
    assert gw.issuer
    token = gw.issuer.mint(gw.resource, **claims)
    async with wire.client() as http:
        with anyio.fail_after(15):
            assert_insufficient_scope(await discover(http, gw, token), gw, f"scope case {case!r} ({claims})")
            await assert_serving(http, gw)


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("scope-string", {"scope": "openid mcp profile"}),
        ("scp-array", {"scp": ["read", "mcp"]}),
    ],
)
async def test_scope_claim_forms(gw: AuthGateway, case: str, claims: dict[str, Any]) -> None:
    assert gw.issuer
    token = gw.issuer.mint(gw.resource, **claims)
    async with wire.client() as http:
        with anyio.fail_after(15):
            assert_ok(await discover(http, gw, token), f"scope case {case!r} ({claims})")


@pytest.mark.parametrize("with_header", [True, False], ids=["with-valid-header", "query-only"])
async def test_access_token_in_query_refused(gw: AuthGateway, with_header: bool) -> None:
    token = gw.token()
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await discover(http, gw, gw.token() if with_header else None, query=f"?access_token={token}")
            assert reply.status == 400, f"?access_token= (header: {with_header}): expected 400, got {reply.describe()}"
            if reply.headers.get("www-authenticate"):
                assert challenge(reply).get("error") == "invalid_request", reply.describe()
            await assert_serving(http, gw)


# --- protected resource metadata (RFC 9728) -----------------------------------------------------


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"])
async def test_protected_resource_metadata(gw: AuthGateway, path: str) -> None:
    assert gw.issuer
    async with wire.client() as http:
        with anyio.fail_after(15):
            response = await http.get(gw.base_url + path)
    assert response.status_code == 200, f"GET {path}: HTTP {response.status_code} {response.text[:300]}"
    assert response.headers.get("content-type", "").startswith("application/json"), dict(response.headers)
    document = response.json()
    assert document.get("resource") == gw.resource, f"GET {path}: {document}"
    assert gw.issuer.issuer in document.get("authorization_servers", []), f"GET {path}: {document}"


async def test_protected_resource_metadata_details(gw: AuthGateway) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            response = await http.get(gw.metadata_url)
    document = response.json()
    assert SCOPE in document.get("scopes_supported", []), document
    assert document.get("bearer_methods_supported") == ["header"], document


# --- JWKS fetching and caching (a fresh issuer and gateway each) ------------------------------


async def test_jwks_cached(gateway: AuthGateway) -> None:
    assert gateway.issuer
    async with wire.client() as http:
        with anyio.fail_after(45):
            for i in range(50):
                reply = await discover(http, gateway, gateway.token(alg=ALGS[i % 3]))
                assert_ok(reply, f"valid token #{i + 1}")
    assert gateway.issuer.jwks_fetches <= 2, (
        f"50 valid requests fetched the JWKS {gateway.issuer.jwks_fetches} times (want 1-2): {gateway.issuer.log()}"
    )


async def test_jwks_cold_burst(gateway: AuthGateway) -> None:
    """10 concurrent first requests share one JWKS fetch (no thundering herd on the issuer)."""
    assert gateway.issuer
    replies: list[wire.Reply] = []

    async def one(i: int) -> None:
        async with wire.client() as http:
            replies.append(await discover(http, gateway, gateway.token(alg=ALGS[i % 3])))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for i in range(10):
                group.start_soon(one, i)
    for reply in replies:
        assert_ok(reply, "one of 10 concurrent first requests")
    assert gateway.issuer.jwks_fetches <= 2, (
        f"10 concurrent first requests fetched the JWKS {gateway.issuer.jwks_fetches} times: {gateway.issuer.log()}"
    )


async def test_rotated_key_refetched(gateway: AuthGateway) -> None:
    """After the issuer rotates its keys, a token with a new kid makes the gateway refetch and is taken.

    The gateway may hold refetches back for a while after its last fetch; the test retries
    for up to 25 s and reports how long it took.
    """
    issuer = gateway.issuer
    assert issuer
    async with wire.client() as http:
        with anyio.fail_after(55):
            assert_ok(await discover(http, gateway, gateway.token()), "warm-up")
            before = issuer.jwks_fetches
            new_keys = issuer.rotate()
            started = time.monotonic()
            last: wire.Reply | None = None
            while time.monotonic() - started < 25:
                last = await discover(http, gateway, gateway.token(key=new_keys["RS256"]))
                if last.status == 200:
                    break
                assert last.status == 401, f"a token with the new kid: {last.describe()}"
                await anyio.sleep(1)
            took = time.monotonic() - started
            assert last is not None and last.status == 200, (
                f"a token signed by the rotated-in key (kid {new_keys['RS256'].kid}) was still refused {took:.0f} s "
                f"after the rotation: {last.describe() if last else ''}; issuer requests: {issuer.log()}"
            )
            assert issuer.jwks_fetches > before, issuer.log()
            for alg in ("ES256", "EdDSA"):
                assert_ok(await discover(http, gateway, gateway.token(alg=alg, key=new_keys[alg])), f"new {alg} key")
    print(f"new kid accepted {took:.1f} s after rotation; JWKS fetches {issuer.jwks_fetches}")


async def test_unknown_kids_rate_limited(gateway: AuthGateway) -> None:
    issuer = gateway.issuer
    assert issuer
    async with wire.client() as http:
        with anyio.fail_after(45):
            assert_ok(await discover(http, gateway, gateway.token()), "warm-up")
            before = issuer.jwks_fetches
            stranger = new_key("ES256")
            for i in range(20):
                token = gateway.token(alg="ES256", key=stranger, kid=f"unknown-{uuid.uuid4().hex}")
                assert_invalid_token(await discover(http, gateway, token), gateway, f"random unknown kid #{i + 1}")
            refetches = issuer.jwks_fetches - before
            assert refetches <= 3, f"20 unknown kids caused {refetches} JWKS refetches (want a few at most): {issuer.log()}"
            await assert_serving(http, gateway, "after 20 unknown kids")


async def test_issuer_down_known_keys_keep_working(gateway: AuthGateway) -> None:
    issuer = gateway.issuer
    assert issuer
    async with wire.client() as http:
        with anyio.fail_after(45):
            for alg in ALGS:
                assert_ok(await discover(http, gateway, gateway.token(alg=alg)), f"warm-up {alg}")
            issuer.fail = True
            for i in range(9):
                assert_ok(await discover(http, gateway, gateway.token(alg=ALGS[i % 3])), f"known {ALGS[i % 3]} key, issuer answering 500")
            # An unknown kid now makes the gateway try a refetch (11 s on: past any refetch
            # interval), which fails: the token is refused, and the failed refetch must not throw
            # away the keys the gateway already has.
            await anyio.sleep(11)
            failed_before = sum(1 for _, status in issuer.requests if status == 500)
            reply = await discover(http, gateway, gateway.token(alg="ES256", key=new_key("ES256")))
            assert reply.status == 401, f"unknown kid while the issuer answers 500: {reply.describe()}"
            refetch_tried = sum(1 for _, status in issuer.requests if status == 500) > failed_before
            print(f"unknown kid with the issuer down: refetch tried: {refetch_tried}")
            for alg in ALGS:
                assert_ok(await discover(http, gateway, gateway.token(alg=alg)), f"known {alg} key after a failed refetch")
            issuer.fail = False
            await assert_serving(http, gateway, "after the issuer came back")


async def test_issuer_options(scratch_dir: Path) -> None:
    """An issuer entry with `jwksURL` (no discovery documents served), `algorithms: [ES256, EdDSA]`
    and no `audiences` (so: the endpoint's resource URL)."""
    issuer = TestIssuer()
    issuer.discovery = False
    gw: AuthGateway | None = None
    try:
        gw = start_auth_gateway(
            scratch_dir, issuer, issuer_extra={"jwksURL": issuer.jwks_url, "algorithms": ["ES256", "EdDSA"], "audiences": None}
        )
        async with wire.client() as http:
            with anyio.fail_after(20):
                for alg in ("ES256", "EdDSA"):
                    assert_ok(await discover(http, gw, gw.token(alg=alg)), f"{alg} token, jwksURL given, discovery 404")
                assert_invalid_token(await discover(http, gw, gw.token(alg="RS256")), gw, "RS256 token, algorithms [ES256, EdDSA]")
                assert_invalid_token(
                    await discover(http, gw, gw.token(alg="ES256", aud=f"{gw.base_url}/other")), gw,
                    "ES256 token for another audience, audiences left to default",
                )
    except BaseException:
        if gw is not None:
            print(gw.describe())
        raise
    finally:
        if gw is not None:
            gw.proc.stop()
        issuer.close()


# --- API keys -----------------------------------------------------------------------------------


def cli(gw: AuthGateway, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(GATEHOUSE_BIN), "apikey", args[0], "--config", str(gw.config_path), *args[1:]]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)} did not finish within 30 s")
    return done


def cli_ok(gw: AuthGateway, *args: str) -> str:
    done = cli(gw, *args)
    assert done.returncode == 0, f"gatehouse apikey {' '.join(args)}: exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout + "\n" + done.stderr


_KEY = re.compile(r"ghk_[A-Za-z0-9_\-]+")


def create_key(gw: AuthGateway, name: str, *extra: str) -> tuple[str, str]:
    """`apikey create`; returns (the key, the whole output)."""
    done = cli(gw, "create", "--name", name, "--owner", "team-a", *extra)
    assert done.returncode == 0, f"apikey create --name {name}: exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    keys = set(_KEY.findall(done.stdout)) or set(_KEY.findall(done.stderr))
    assert len(keys) == 1, f"apikey create should print exactly one ghk_ key, found {keys}:\nstdout: {done.stdout}\nstderr: {done.stderr}"
    key = keys.pop()
    assert len(key) >= 4 + 22, f"a ghk_ key of at least 128 bits expected, got {key!r}"
    return key, done.stdout + "\n" + done.stderr


def id_candidates(name: str, create_output: str, list_output: str, key: str) -> list[str]:
    """Where the key's id may be: 'id: X' in create's output, else the row naming the key in list's."""
    candidates: list[str] = []
    for match in re.finditer(r"(?i)\bid\b[\s:=\"']*([A-Za-z0-9_\-]{4,})", create_output):
        candidates.append(match.group(1))
    word = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
    for line in list_output.splitlines():
        if word.search(line):
            candidates.extend(t.strip("\"',|") for t in re.split(r"[\s|,]+", line.strip()) if t.strip("\"',|"))
    seen: list[str] = []
    for c in candidates:
        if c not in seen and c != key and c != name and c.lower() not in ("id", "name", "owner", "team-a", "mcp"):
            seen.append(c)
    return seen


async def test_api_keys(gateway: AuthGateway) -> None:
    gw = gateway
    async with wire.client() as http:
        with anyio.fail_after(55):
            key, create_output = create_key(gw, "ci", "--scope", SCOPE, "--expires-in", "1h")
            assert_ok(await discover(http, gw, key), "a new API key with scope mcp")

            listing = cli_ok(gw, "list")
            assert re.search(r"(?<![\w-])ci(?![\w-])", listing), f"apikey list does not show the key's name 'ci':\n{listing}"
            assert key not in listing and key[-12:] not in listing, f"apikey list shows the key itself:\n{listing}"

            unknown = "ghk_" + uuid.uuid4().hex + uuid.uuid4().hex
            assert_invalid_token(await discover(http, gw, unknown), gw, "an API key that was never issued")
            assert_invalid_token(await discover(http, gw, key[:-2] + ("AA" if key[-2:] != "AA" else "BB")), gw, "a mangled API key")

            no_scope, _ = create_key(gw, "ci-noscope", "--scope", "other", "--expires-in", "1h")
            assert_insufficient_scope(await discover(http, gw, no_scope), gw, "an API key without scope mcp")

            short, _ = create_key(gw, "ci-expired", "--scope", SCOPE, "--expires-in", "1s")
            await anyio.sleep(2.0)
            assert_invalid_token(await discover(http, gw, short), gw, "an API key 2 s after --expires-in 1s")

            # Revoke 'ci' by its id (found in create's or list's output).
            candidates = id_candidates("ci", create_output, listing, key)
            tried = []
            for candidate in candidates:
                done = cli(gw, "revoke", candidate)
                tried.append(f"{candidate}: exit {done.returncode} {done.stdout.strip()[:200]} {done.stderr.strip()[:200]}")
                if done.returncode == 0:
                    break
            else:
                pytest.fail(f"apikey revoke succeeded with none of the ids found in create/list output:\n"
                            f"{chr(10).join(tried)}\ncreate:\n{create_output}\nlist:\n{listing}")
            revoked_at = time.monotonic()
            await anyio.sleep(1.5)
            reply = await discover(http, gw, key)
            if reply.status != 401:
                while reply.status != 401 and time.monotonic() - revoked_at < 8:
                    await anyio.sleep(0.5)
                    reply = await discover(http, gw, key)
                pytest.fail(
                    f"a revoked API key still worked 1.5 s after `apikey revoke` with cacheSeconds 1 "
                    f"(refused after {time.monotonic() - revoked_at:.1f} s: {reply.status == 401}); last: {reply.describe()}"
                )
            assert_invalid_token(reply, gw, "a revoked API key")

            fresh, _ = create_key(gw, "ci-2", "--scope", SCOPE)
            assert_ok(await discover(http, gw, fresh), "another API key after the revocation")
            await assert_serving(http, gw, "after the API key checks")


# --- clean shutdown with the auth store open ------------------------------------------------------


async def test_sigterm_clean_exit_with_auth_store(gateway: AuthGateway) -> None:
    """After tokens and API keys went through the store, SIGTERM still ends the gateway cleanly (exit 0)."""
    async with wire.client() as http:
        with anyio.fail_after(20):
            assert_ok(await discover(http, gateway, gateway.token()), "a JWT before shutdown")
            key, _ = create_key(gateway, "before-shutdown", "--scope", SCOPE)
            assert_ok(await discover(http, gateway, key), "an API key before shutdown")
    gateway.proc.popen.send_signal(signal.SIGTERM)
    started = time.monotonic()
    try:
        code = gateway.proc.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the gateway did not exit within 10 s of SIGTERM\n{gateway.describe()}", pytrace=False)
    took = time.monotonic() - started
    assert code == 0, f"exit code {code} after SIGTERM ({took:.1f} s)\n{gateway.describe()}"


# --- and it still serves (the module's gateway, after everything above) --------------------------


async def test_still_serving_at_the_end(gw: AuthGateway) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            for alg in ALGS:
                assert_ok(await discover(http, gw, gw.token(alg=alg)), f"a valid {alg} token at the end")
            assert_invalid_token(await discover(http, gw, "not-a-jwt"), gw, "garbage at the end")
