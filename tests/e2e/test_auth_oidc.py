"""A real external OpenID Connect provider (Glewlwyd 2.7.5) in front of Gatehouse.

Glewlwyd (see oidc_provider.py) issues RS256 JWT access tokens by client_credentials with
`resource=<URL>` (RFC 8707); the URL comes back in `aud` (a string). The gateway trusts it via

    spec.auth.issuers: [{issuer: http://127.0.0.1:<p>/api/oidc, audiences: [<gateway>/mcp]}]

Two gateways run: one finds the JWKS by discovery (`<issuer>/.well-known/openid-configuration`,
which Glewlwyd serves with `issuer` equal to the tokens' `iss` and `jwks_uri` `<issuer>/jwks`,
so discovery matches), the other has `jwksURL` set explicitly. Every test runs against both.

- a token minted for the gateway's resource: a tool call through the official SDK (both eras);
- a token minted for another resource, or with no resource (Glewlwyd then puts the scope name
  `mcp` in `aud`): 401 with `WWW-Authenticate: Bearer error="invalid_token"`;
- a token re-signed by another RSA key under Glewlwyd's kid: 401 invalid_token;
- no token: 401 with `resource_metadata`; the metadata names the resource and Glewlwyd.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from auth_e2e import (
    AuthGateway,
    assert_accepted,
    assert_invalid_token,
    initialize_raw,
    sdk_echo,
    start_auth_gateway,
    www_authenticate,
)
from conftest import free_port
from oidc_provider import OIDCProvider, jwt_parts, require_glewlwyd, rsa_keypair_pem, sign_rs256, start_glewlwyd

import httpx2

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

OTHER_RESOURCE = "https://other-mcp.example/mcp"
JWKS_MODES = ("discovered", "explicit")


@dataclass
class Setup:
    idp: OIDCProvider
    gateways: dict[str, AuthGateway]


@pytest.fixture(scope="module")
def oidc(log_root: Path) -> Iterator[Setup]:
    require_glewlwyd()
    log_dir = log_root / "auth-oidc"
    log_dir.mkdir(exist_ok=True)
    ports = {mode: free_port() for mode in JWKS_MODES}
    resources = [f"http://127.0.0.1:{port}/mcp" for port in ports.values()] + [OTHER_RESOURCE]
    idp = start_glewlwyd(log_dir, resources)
    gateways: dict[str, AuthGateway] = {}
    try:
        for mode, port in ports.items():
            issuer: dict[str, object] = {"issuer": idp.issuer, "audiences": [f"http://127.0.0.1:{port}/mcp"]}
            if mode == "explicit":
                issuer["jwksURL"] = idp.jwks_uri
            auth = {"publicURL": f"http://127.0.0.1:{port}", "cacheSeconds": 1, "issuers": [issuer]}
            storage = {"sqlite": {"path": str(log_dir / f"gateway-{mode}.db")}}
            gateways[mode] = start_auth_gateway(log_dir, f"gateway-{mode}", port, auth, storage=storage)
        yield Setup(idp=idp, gateways=gateways)
    finally:
        for gateway in gateways.values():
            gateway.stop()
        idp.stop()


@pytest.fixture(params=JWKS_MODES)
def gw(request: pytest.FixtureRequest, oidc: Setup) -> Iterator[AuthGateway]:
    gateway = oidc.gateways[request.param]
    gateway.alive()
    yield gateway
    # shown by pytest only when the test failed ("Captured stdout teardown")
    print(f"--- {gateway.name} output (tail) ---\n{gateway.proc.output(limit=4000)}")


@pytest.fixture
def idp(oidc: Setup) -> OIDCProvider:
    assert oidc.idp.proc.popen.poll() is None, f"glewlwyd died\n{oidc.idp.proc.describe()}"
    return oidc.idp


def test_glewlwyd_tokens_are_what_the_tests_assume(idp: OIDCProvider, gw: AuthGateway) -> None:
    """RS256 JWT with a kid from the JWKS, iss = issuer, aud = the requested resource (a string)."""
    assert idp.discovery.get("issuer") == idp.issuer, f"discovery issuer {idp.discovery.get('issuer')!r}"
    assert idp.discovery.get("jwks_uri") == f"{idp.issuer}/jwks", idp.discovery
    token = idp.mint(gw.resource)
    claims = idp.check_token(token, gw.resource)
    assert claims["aud"] == gw.resource, f"aud {claims['aud']!r}"
    assert claims.get("scope") == "mcp", claims
    header, _ = jwt_parts(token)
    assert header.get("typ") == "at+jwt", header
    refused = idp.token_response("http://127.0.0.1:1/not-listed")
    assert refused.status_code == 400 and refused.json().get("error") == "invalid_target", refused.text


@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_sdk_tool_call_with_glewlwyd_token(idp: OIDCProvider, gw: AuthGateway, era: str) -> None:
    token = idp.mint(gw.resource)
    text = await sdk_echo(gw.mcp_url, token, f"via glewlwyd ({era})", era=era)
    assert text == f"via glewlwyd ({era})"


async def test_no_token_is_challenged_with_resource_metadata(gw: AuthGateway) -> None:
    reply = await initialize_raw(gw.mcp_url, None)
    assert reply.status == 401, f"no token: {reply.describe()}"
    challenge = www_authenticate(reply)
    assert challenge["_scheme"].lower() == "bearer", challenge["_raw"]
    assert challenge.get("resource_metadata") == f"{gw.base_url}/.well-known/oauth-protected-resource/mcp", challenge["_raw"]
    assert "error" not in challenge, f"a request without credentials gets no error code (RFC 6750 3.1): {challenge['_raw']}"


def test_protected_resource_metadata_names_glewlwyd(idp: OIDCProvider, gw: AuthGateway) -> None:
    with httpx2.Client(timeout=10.0, trust_env=False) as http:
        response = http.get(f"{gw.base_url}/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text[:300]}"
    metadata = response.json()
    assert metadata.get("resource") == gw.resource, metadata
    assert idp.issuer in metadata.get("authorization_servers", []), metadata
    assert "mcp" in metadata.get("scopes_supported", []), metadata


async def test_token_for_another_resource_is_refused(idp: OIDCProvider, gw: AuthGateway) -> None:
    token = idp.mint(OTHER_RESOURCE)
    idp.check_token(token, OTHER_RESOURCE)  # a genuine Glewlwyd token, only the audience differs
    reply = await initialize_raw(gw.mcp_url, token)
    assert_invalid_token(reply, f"a Glewlwyd token with aud={OTHER_RESOURCE}")
    # and the right one still works (the refusal was about the audience)
    await assert_accepted(gw.mcp_url, idp.mint(gw.resource), "a Glewlwyd token for the gateway's resource")


async def test_token_without_resource_is_refused(idp: OIDCProvider, gw: AuthGateway) -> None:
    response = idp.token_response(None)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    _, claims = jwt_parts(token)
    assert claims.get("aud") == "mcp", f"glewlwyd without resource=: aud {claims.get('aud')!r}"
    reply = await initialize_raw(gw.mcp_url, token)
    assert_invalid_token(reply, "a Glewlwyd token with aud=\"mcp\" (no resource requested)")


async def test_token_signed_by_another_key_with_the_same_kid_is_refused(idp: OIDCProvider, gw: AuthGateway) -> None:
    genuine = idp.mint(gw.resource)
    header, claims = jwt_parts(genuine)
    assert header.get("kid") in idp.kids
    now = int(time.time())
    forged_claims = {**claims, "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + 600}
    other_key, _ = rsa_keypair_pem()
    forged = sign_rs256(header, forged_claims, other_key)
    reply = await initialize_raw(gw.mcp_url, forged)
    assert_invalid_token(reply, f"an RS256 token signed by another key under Glewlwyd's kid {header.get('kid')!r}")
    # the same claims signed by Glewlwyd's own key pass: only the signature differs
    resigned = sign_rs256(header, forged_claims, idp.private_key_pem)
    await assert_accepted(gw.mcp_url, resigned, "the same claims signed with Glewlwyd's key")
    await assert_accepted(gw.mcp_url, genuine, "the genuine Glewlwyd token")
