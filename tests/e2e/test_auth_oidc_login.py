"""The embedded authorization server delegating user sign-in to an upstream OpenID Connect provider.

Gateway config under test (docs: /work/notes/auth-design.md, plus `login.oidc`):

    spec.auth.authorizationServer.login.oidc:
      issuer: http://127.0.0.1:<glewlwyd>/api/oidc     # discovery: <issuer>/.well-known/openid-configuration
      clientID: gw-login
      clientSecret: {valueFrom: {env: GW_LOGIN_SECRET}}
      scopes: [openid]
      subjectClaim: sub

The provider is a real Glewlwyd 2.7.5 (oidc_provider.py) with a confidential client `gw-login`
(redirect_uri <gw>/oauth/callback) and a user alice; how a user signs in there without its JS
login app is in /work/notes/glewlwyd-user-flow.md (REST login, grant, then the authorization URL
again with `&g_continue`).

The MCP client is emulated with httpx2, one cookie jar per party (both servers are on 127.0.0.1
and cookies ignore ports, so a shared jar would leak Glewlwyd's session cookie to the gateway):

    client --GET /oauth/authorize (PKCE S256)--> gateway --302 + Set-Cookie gh_login--> glewlwyd
    glewlwyd (alice signs in) --302 /oauth/callback?code&state--> gateway (+ gh_login cookie)
    gateway --200 consent page (csrf, request, gh_csrf; no username/password)--> browser
    POST /oauth/authorize decision=allow --302 redirect_uri?code&state&iss--> client
    client --POST /oauth/token (code_verifier)--> access token --> echo through the Python MCP SDK

Three gateways share the Glewlwyd (its id_tokens also carry `email` and `preferred_username`):
"main" (scopes [openid], subjectClaim sub), "username" (default scopes, subjectClaim
preferred_username) and "missing-claim" (subjectClaim nickname, which Glewlwyd never sends).

Checked: the provider request (client_id, redirect_uri, scope, state, nonce, S256 challenge), the
gh_login cookie (HttpOnly, Path=/oauth, not SameSite=Strict), the consent page, the token's
`sub` (= Glewlwyd's sub for alice, learnt through a separate probe client; = "alice" with
subjectClaim preferred_username) and `iss` (= publicURL), then an echo through the MCP SDK.
Refusals: callback without gh_login → 400 and no code; state altered by one character → 400;
a state from another sign-in (foreign gh_login) → 400; deny on the consent page → access_denied
at the client; the provider's error=access_denied → access_denied at the client (Glewlwyd never
sends access_denied itself, so the browser sends it on the provider's behalf, after a refused
password); a real Glewlwyd error redirect (prompt=none without a session → interaction_required)
→ an error at the client, never a code. Also never a code for: a replayed callback, a nonce or
code_challenge altered by the browser on its way to Glewlwyd, an id_token without the
subjectClaim, a consent POST without its gh_csrf cookie, the login state posted as the consent
`request`; and neither the state nor the consent `request` (both signed by the gateway) is
accepted as a bearer token at /mcp.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import urllib.parse
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx2
import pytest
from auth_e2e import AuthGateway, initialize_raw, sdk_echo, start_auth_gateway
from conftest import free_port
from oidc_provider import OIDCProvider, jwt_parts, require_glewlwyd, start_glewlwyd

pytestmark = [pytest.mark.gateway_only]

LOGIN_CLIENT = "gw-login"
LOGIN_SECRET_ENV = "GW_LOGIN_SECRET"
USERNAME, PASSWORD = "alice", "alicepw"
PROBE_CLIENT, PROBE_SECRET, PROBE_REDIRECT = "sub-probe", "sub-probe-secret", "http://127.0.0.1:9/cb"
CLIENT_REDIRECT = "http://127.0.0.1:8977/callback"  # the MCP client's redirect_uri; never listened on
CLIENT_NAME = "OIDC Login E2E Client"
SCOPE = "mcp"
TIMEOUT = httpx2.Timeout(15.0, connect=5.0)


def browser() -> httpx2.Client:
    """A browser-ish client for ONE party: its own cookie jar, no redirects followed."""
    return httpx2.Client(timeout=TIMEOUT, trust_env=False, follow_redirects=False)


def describe(response: httpx2.Response) -> str:
    return (f"{response.request.method} {response.request.url} -> HTTP {response.status_code} "
            f"headers={dict(response.headers)} body={response.text[:1500]!r}")


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def without_query(url: str) -> str:
    split = urllib.parse.urlsplit(url)
    return f"{split.scheme}://{split.netloc}{split.path}"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def set_cookie(response: httpx2.Response, name: str) -> tuple[str, dict[str, str]] | None:
    """(value, {lowercased attribute: value}) of the Set-Cookie for `name`, or None."""
    for header in response.headers.get_list("set-cookie"):
        first, *attrs = [part.strip() for part in header.split(";")]
        key, _, value = first.partition("=")
        if key.strip() == name:
            attributes = {}
            for attr in attrs:
                k, _, v = attr.partition("=")
                attributes[k.strip().lower()] = v.strip()
            return value.strip(), attributes
    return None


# --- Glewlwyd: admin setup and a user's sign-in (see /work/notes/glewlwyd-user-flow.md) ------------


def glewlwyd_admin_setup(idp: OIDCProvider, gateway_callbacks: list[str], login_secret: str) -> None:
    """Create the confidential client gw-login, the probe client and the user alice."""
    api = f"{idp.base_url}/api"
    confidential = {"confidential": True, "enabled": True, "authorization_type": ["code"], "scope": ["openid"],
                    "token_endpoint_auth_method": ["client_secret_basic", "client_secret_post"]}
    with browser() as admin:
        login = admin.post(f"{api}/auth/", json={"username": "admin", "password": "password"})
        assert login.status_code == 200, f"glewlwyd admin login: {describe(login)}"
        for body in (
            {"client_id": LOGIN_CLIENT, "name": LOGIN_CLIENT, "password": login_secret,
             "redirect_uri": gateway_callbacks, **confidential},
            {"client_id": PROBE_CLIENT, "name": PROBE_CLIENT, "password": PROBE_SECRET,
             "redirect_uri": [PROBE_REDIRECT], **confidential},
        ):
            created = admin.post(f"{api}/client/", params={"source": "database"}, json=body)
            assert created.status_code == 200, f"glewlwyd: creating client {body['client_id']}: {describe(created)}"
        user = {"username": USERNAME, "name": "Alice", "email": "alice@example.test", "password": PASSWORD,
                "enabled": True, "scope": ["openid"]}
        created = admin.post(f"{api}/user/", params={"source": "database"}, json=user)
        assert created.status_code == 200, f"glewlwyd: creating user {USERNAME}: {describe(created)}"


def glewlwyd_login(idp_browser: httpx2.Client, idp: OIDCProvider, username: str, password: str) -> httpx2.Response:
    """POST /api/auth/ (the session cookie lands in idp_browser's jar)."""
    return idp_browser.post(f"{idp.base_url}/api/auth/", json={"username": username, "password": password})


def glewlwyd_sign_in(idp: OIDCProvider, authorization_url: str, client_id: str,
                     username: str = USERNAME, password: str = PASSWORD) -> str:
    """Be the user at Glewlwyd: log in, grant openid to client_id, continue the authorization request.

    Returns the Location Glewlwyd redirects to (the client's redirect_uri with code and state)."""
    with browser() as user:
        login = glewlwyd_login(user, idp, username, password)
        assert login.status_code == 200, f"glewlwyd user login as {username}: {describe(login)}"
        grant = user.put(f"{idp.base_url}/api/auth/grant/{client_id}/", json={"scope": "openid"})
        assert grant.status_code == 200, f"glewlwyd grant openid to {client_id}: {describe(grant)}"
        # The first visit always lands on the JS login app; the app then comes back with &g_continue.
        first = user.get(authorization_url)
        assert first.status_code == 302 and "/login.html" in first.headers.get("location", ""), (
            f"glewlwyd's authorization endpoint (first visit) should send the browser to login.html: {describe(first)}"
        )
        separator = "&" if urllib.parse.urlsplit(authorization_url).query else "?"
        done = user.get(authorization_url + separator + "g_continue")
        assert done.status_code == 302, f"glewlwyd authorization with a session and g_continue: {describe(done)}"
        location = done.headers.get("location", "")
        assert "code=" in location or "error=" in location, f"glewlwyd did not redirect back: {describe(done)}"
        return location


def glewlwyd_sub(idp: OIDCProvider, username: str = USERNAME, password: str = PASSWORD) -> str:
    """alice's `sub` at Glewlwyd (subject-type public: the same for every client), via the probe client."""
    query = {"response_type": "code", "client_id": PROBE_CLIENT, "redirect_uri": PROBE_REDIRECT, "scope": "openid",
             "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8)}
    authorization_endpoint = idp.discovery.get("authorization_endpoint") or f"{idp.issuer}/auth"
    location = glewlwyd_sign_in(idp, f"{authorization_endpoint}?{urllib.parse.urlencode(query)}", PROBE_CLIENT,
                                username, password)
    code = query_of(location).get("code")
    assert code, f"probe sign-in: no code in {location!r}"
    with browser() as http:
        token = http.post(idp.token_endpoint, data={"grant_type": "authorization_code", "code": code,
                                                     "redirect_uri": PROBE_REDIRECT},
                          auth=(PROBE_CLIENT, PROBE_SECRET))
    assert token.status_code == 200 and token.json().get("id_token"), f"probe token: {describe(token)}"
    _, claims = jwt_parts(token.json()["id_token"])
    assert claims.get("sub") and claims["sub"] != username, f"glewlwyd id_token claims: {claims}"
    return claims["sub"]


# --- the gateways -----------------------------------------------------------------------------------

# name -> (login.oidc scopes (None: the default), subjectClaim (None: the default)).
GATEWAYS: dict[str, tuple[list[str] | None, str | None]] = {
    "main": (["openid"], "sub"),                       # the configuration of the feature's example
    "username": (None, "preferred_username"),          # default scopes [openid, email, profile]
    "missing-claim": (["openid"], "nickname"),         # a claim Glewlwyd never sends
}


@dataclass
class Setup:
    """One gateway in front of the shared Glewlwyd, and the MCP client registered at it."""
    idp: OIDCProvider
    gateway: AuthGateway
    alice_sub: str
    client_id: str  # registered dynamically (public client, PKCE)

    @property
    def public_url(self) -> str:
        return self.gateway.public_url

    @property
    def callback_url(self) -> str:
        return f"{self.public_url}/oauth/callback"


def glewlwyd_enable_claims(idp: OIDCProvider) -> None:
    """id_tokens also carry `email` and `preferred_username` (= the username); the plugin is reloaded."""
    api = f"{idp.base_url}/api"
    with browser() as admin:
        login = admin.post(f"{api}/auth/", json={"username": "admin", "password": "password"})
        assert login.status_code == 200, f"glewlwyd admin login: {describe(login)}"
        current = admin.get(f"{api}/mod/plugin/oidc")
        assert current.status_code == 200, describe(current)
        module = current.json()
        module["parameters"]["email-claim"] = "mandatory"
        module["parameters"]["claims"] = [{"name": "preferred_username", "user-property": "username",
                                           "type": "string", "mandatory": True, "scope": []}]
        body = {k: module[k] for k in ("module", "name", "display_name", "parameters")}
        updated = admin.put(f"{api}/mod/plugin/oidc", json=body)
        assert updated.status_code == 200, f"glewlwyd: updating the oidc plugin: {describe(updated)}"
        for action in ("disable", "enable"):  # parameters take effect on reload
            done = admin.put(f"{api}/mod/plugin/oidc/{action}")
            assert done.status_code == 200, f"glewlwyd: {action} the oidc plugin: {describe(done)}"


def start_login_gateway(log_dir: Path, idp: OIDCProvider, name: str, port: int, login_secret: str,
                        scopes: list[str] | None, subject_claim: str | None) -> AuthGateway:
    oidc: dict[str, Any] = {"issuer": idp.issuer, "clientID": LOGIN_CLIENT,
                            "clientSecret": {"valueFrom": {"env": LOGIN_SECRET_ENV}}}
    if scopes is not None:
        oidc["scopes"] = scopes
    if subject_claim is not None:
        oidc["subjectClaim"] = subject_claim
    auth = {
        "publicURL": f"http://127.0.0.1:{port}",
        "cacheSeconds": 1,
        "authorizationServer": {
            "scopes": [SCOPE],
            "login": {"oidc": oidc},
            "users": [],
            "clients": [],
            "registration": {"dynamic": True},
        },
    }
    return start_auth_gateway(log_dir, f"gateway-{name}", port, auth,
                              storage={"sqlite": {"path": str(log_dir / f"gateway-{name}.db")}},
                              env={LOGIN_SECRET_ENV: login_secret})


def register_client(gateway: AuthGateway) -> str:
    with browser() as http:
        registered = http.post(f"{gateway.base_url}/oauth/register", json={
            "redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "client_name": CLIENT_NAME, "scope": SCOPE,
        })
    assert registered.status_code == 201 and registered.json().get("client_id"), (
        f"dynamic registration: {describe(registered)}\n{gateway.describe()}"
    )
    return registered.json()["client_id"]


@pytest.fixture(scope="module")
def world(log_root: Path) -> Iterator[dict[str, Setup]]:
    require_glewlwyd()
    log_dir = log_root / "auth-oidc-login"
    log_dir.mkdir(exist_ok=True)
    ports = {name: free_port() for name in GATEWAYS}
    login_secret = secrets.token_urlsafe(24)
    idp = start_glewlwyd(log_dir, [f"http://127.0.0.1:{port}/mcp" for port in ports.values()])
    gateways: dict[str, AuthGateway] = {}
    try:
        glewlwyd_admin_setup(idp, [f"http://127.0.0.1:{port}/oauth/callback" for port in ports.values()], login_secret)
        glewlwyd_enable_claims(idp)
        alice_sub = glewlwyd_sub(idp)
        for name, (scopes, subject_claim) in GATEWAYS.items():
            gateways[name] = start_login_gateway(log_dir, idp, name, ports[name], login_secret, scopes, subject_claim)
        yield {name: Setup(idp=idp, gateway=gateway, alice_sub=alice_sub, client_id=register_client(gateway))
               for name, gateway in gateways.items()}
    finally:
        for gateway in gateways.values():
            gateway.stop()
        idp.stop()


@pytest.fixture
def setup(world: dict[str, Setup]) -> Setup:
    return world["main"]


# --- the client's side ------------------------------------------------------------------------------


@dataclass
class Authorization:
    """One authorization attempt: the MCP client's parameters and what the gateway answered."""
    state: str
    verifier: str
    gateway_browser: httpx2.Client          # the browser's cookie jar for the gateway
    provider_url: str = ""                  # where the gateway sent the browser
    provider_params: dict[str, str] = field(default_factory=dict)
    login_cookie: str = ""
    login_cookie_attributes: dict[str, str] = field(default_factory=dict)
    authorize_response: httpx2.Response | None = None


def begin(setup: Setup) -> Authorization:
    """GET <gw>/oauth/authorize as the MCP client would; expect the redirect to Glewlwyd."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    query = {"response_type": "code", "client_id": setup.client_id, "redirect_uri": CLIENT_REDIRECT,
             "code_challenge": challenge, "code_challenge_method": "S256", "state": state, "scope": SCOPE,
             "resource": setup.gateway.resource}
    gw = browser()
    auth = Authorization(state=state, verifier=verifier, gateway_browser=gw)
    response = gw.get(f"{setup.gateway.base_url}/oauth/authorize", params=query)
    auth.authorize_response = response
    assert response.status_code in (302, 303), (
        f"GET /oauth/authorize with login.oidc should redirect to the provider: {describe(response)}"
    )
    auth.provider_url = response.headers.get("location", "")
    auth.provider_params = query_of(auth.provider_url)
    cookie = set_cookie(response, "gh_login")
    assert cookie, f"GET /oauth/authorize set no gh_login cookie; Set-Cookie: {response.headers.get_list('set-cookie')}"
    auth.login_cookie, auth.login_cookie_attributes = cookie
    return auth


def gateway_callback(auth: Authorization, location: str) -> httpx2.Response:
    """Follow the provider's redirect to <gw>/oauth/callback with the browser's gateway cookies."""
    return auth.gateway_browser.get(location)


def callback_without_cookies(location: str) -> httpx2.Response:
    with browser() as stranger:
        return stranger.get(location)


@dataclass
class ConsentPage:
    response: httpx2.Response
    inputs: dict[str, str]
    buttons: list[tuple[str, str]]
    action: str
    csrf_cookie: str


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.actions: list[str] = []
        self.inputs: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self.actions.append(a.get("action", ""))
        elif tag in ("input", "button") and a.get("name"):
            if tag == "button" or a.get("type", "").lower() == "submit":
                self.buttons.append((a["name"], a.get("value", "")))
            else:
                self.inputs.setdefault(a["name"], a.get("value", ""))


def consent_page(response: httpx2.Response) -> ConsentPage:
    assert response.status_code == 200, f"the callback should answer the consent page (200): {describe(response)}"
    assert "text/html" in response.headers.get("content-type", ""), describe(response)
    parser = _FormParser()
    parser.feed(response.text)
    for name in ("csrf", "request"):
        assert parser.inputs.get(name), f"consent page: no hidden input {name!r}: {response.text[:3000]}"
    cookie = set_cookie(response, "gh_csrf")
    assert cookie and cookie[0], f"consent page set no gh_csrf cookie; Set-Cookie: {response.headers.get_list('set-cookie')}"
    action = urllib.parse.urljoin(str(response.request.url), (parser.actions or [""])[0] or "/oauth/authorize")
    return ConsentPage(response=response, inputs=parser.inputs, buttons=parser.buttons, action=action,
                       csrf_cookie=cookie[0])


def decide(auth: Authorization, page: ConsentPage, decision: str) -> httpx2.Response:
    form = {"csrf": page.inputs["csrf"], "request": page.inputs["request"], "decision": decision}
    return auth.gateway_browser.post(page.action, data=form)


def client_redirect(response: httpx2.Response) -> dict[str, str]:
    """The query of a 302 to the MCP client's redirect_uri."""
    assert response.status_code in (302, 303), f"expected a redirect to {CLIENT_REDIRECT}: {describe(response)}"
    location = response.headers.get("location", "")
    assert without_query(location) == CLIENT_REDIRECT, f"redirected to {location!r}, not {CLIENT_REDIRECT}"
    return query_of(location)


def assert_refused_page(response: httpx2.Response, what: str) -> None:
    """400, an error page: no redirect anywhere, no authorization code, no consent form."""
    assert response.status_code == 400, f"{what}: expected 400, got {describe(response)}"
    location = response.headers.get("location", "")
    assert not location, f"{what}: a 400 must not redirect (Location: {location!r})"
    assert "code=" not in response.text, f"{what}: the 400 page mentions a code: {response.text[:1500]!r}"
    parser = _FormParser()
    parser.feed(response.text)
    assert "csrf" not in parser.inputs and "request" not in parser.inputs, (
        f"{what}: the 400 page still carries a consent form: {response.text[:1500]!r}"
    )


def token_exchange(setup: Setup, auth: Authorization, code: str) -> httpx2.Response:
    with browser() as http:
        return http.post(f"{setup.gateway.base_url}/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": auth.verifier, "client_id": setup.client_id, "resource": setup.gateway.resource,
        })


def tamper(value: str) -> str:
    """The same string with one character (near the middle, alphanumeric) changed."""
    positions = sorted(range(len(value)), key=lambda i: abs(i - len(value) // 2))
    for i in positions:
        if value[i].isalnum():
            replacement = "B" if value[i] != "B" else "C"
            return value[:i] + replacement + value[i + 1:]
    raise AssertionError(f"cannot tamper with {value!r}")


def with_query(url: str, **changes: str) -> str:
    split = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
    query = [(k, changes.get(k, v)) for k, v in query]
    return urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(query)))


# --- tests ------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sign_in_at_glewlwyd_then_call_a_tool(setup: Setup) -> None:
    idp, gw = setup.idp, setup.gateway
    auth = begin(setup)
    with closing(auth.gateway_browser):
        # 1. the gateway's request to the provider
        endpoint = idp.discovery.get("authorization_endpoint") or f"{idp.issuer}/auth"
        assert without_query(auth.provider_url) == endpoint, (
            f"redirected to {auth.provider_url!r}, expected Glewlwyd's authorization_endpoint {endpoint}"
        )
        p = auth.provider_params
        assert p.get("response_type") == "code", p
        assert p.get("client_id") == LOGIN_CLIENT, p
        assert p.get("redirect_uri") == setup.callback_url, p
        assert "openid" in p.get("scope", "").split(), p
        assert p.get("state") and p.get("nonce"), f"state and nonce required: {p}"
        assert p.get("state") != auth.state, f"the client's own state must not be passed to the provider as is: {p}"
        assert p.get("code_challenge") and p.get("code_challenge_method") == "S256", p
        attrs = auth.login_cookie_attributes
        assert "httponly" in attrs, f"gh_login must be HttpOnly: {auth.authorize_response.headers.get_list('set-cookie')}"
        assert attrs.get("path") == "/oauth", f"gh_login Path: {attrs}"

        # 2. alice signs in at Glewlwyd, which sends the browser to the gateway's callback
        location = glewlwyd_sign_in(idp, auth.provider_url, LOGIN_CLIENT)
        assert without_query(location) == setup.callback_url, f"glewlwyd redirected to {location!r}"
        assert query_of(location).get("state") == p["state"], location

        # 3. the callback: the consent page
        page = consent_page(gateway_callback(auth, location))
        assert "username" not in page.inputs and "password" not in page.inputs, (
            f"with login.oidc the consent page must not ask for a password: inputs {sorted(page.inputs)}"
        )
        decisions = {value for name, value in page.buttons if name == "decision"}
        assert {"allow", "deny"} <= decisions, f"consent buttons: {page.buttons}"
        text = html.unescape(page.response.text)
        assert CLIENT_NAME in text or setup.client_id in text, f"the consent page does not name the client: {text[:3000]}"
        assert "127.0.0.1:8977" in text or "127.0.0.1" in text.replace(gw.base_url, ""), (
            f"the consent page does not name the redirect host: {text[:3000]}"
        )

        # 4. allow → the code at the MCP client
        params = client_redirect(decide(auth, page, "allow"))
        assert params.get("code"), params
        assert params.get("state") == auth.state, params
        assert params.get("iss") == setup.public_url, f"RFC 9207 iss: {params}"

    # 5. the token
    response = token_exchange(setup, auth, params["code"])
    assert response.status_code == 200, f"token exchange: {describe(response)}\n{gw.describe()}"
    body = response.json()
    token = body.get("access_token")
    assert token and str(body.get("token_type", "")).lower() == "bearer", body
    _, claims = jwt_parts(token)
    assert claims.get("sub") == setup.alice_sub, (
        f"sub {claims.get('sub')!r} should be Glewlwyd's sub for alice {setup.alice_sub!r}; claims: {claims}"
    )
    assert claims.get("iss") == setup.public_url, f"iss: {claims}"
    aud = claims.get("aud")
    assert gw.resource in (aud if isinstance(aud, list) else [aud]), f"aud: {claims}"
    assert SCOPE in str(claims.get("scope", "")).split(), f"scope: {claims}"

    # 6. a tool call through the official SDK with that token
    text = await sdk_echo(gw.mcp_url, token, "signed in at glewlwyd")
    assert text == "signed in at glewlwyd"
    gw.alive()


def test_login_cookie_survives_the_providers_redirect(setup: Setup) -> None:
    """gh_login must come back on a top-level redirect from another site: SameSite=Strict would drop it."""
    auth = begin(setup)
    auth.gateway_browser.close()
    samesite = auth.login_cookie_attributes.get("samesite", "").lower()
    assert samesite != "strict", (
        f"gh_login is SameSite=Strict: browsers do not send it on the redirect from the provider "
        f"(a cross-site navigation), so the callback could never succeed. Set-Cookie: "
        f"{auth.authorize_response.headers.get_list('set-cookie')}"
    )


def test_callback_without_login_cookie_is_refused(setup: Setup) -> None:
    auth = begin(setup)
    with closing(auth.gateway_browser):
        location = glewlwyd_sign_in(setup.idp, auth.provider_url, LOGIN_CLIENT)
        assert query_of(location).get("code"), location
        assert_refused_page(callback_without_cookies(location), "callback without the gh_login cookie")
    setup.gateway.alive()


def test_callback_with_altered_state_is_refused(setup: Setup) -> None:
    auth = begin(setup)
    with closing(auth.gateway_browser):
        location = glewlwyd_sign_in(setup.idp, auth.provider_url, LOGIN_CLIENT)
        state = query_of(location)["state"]
        altered = with_query(location, state=tamper(state))
        assert query_of(altered)["state"] != state and len(query_of(altered)["state"]) == len(state)
        assert_refused_page(gateway_callback(auth, altered), "callback with the state altered by one character")
    setup.gateway.alive()


def test_callback_with_another_sign_ins_state_is_refused(setup: Setup) -> None:
    """Browser B (its own gh_login) presents the code and state of browser A's sign-in."""
    first, second = begin(setup), begin(setup)
    with closing(first.gateway_browser), closing(second.gateway_browser):
        location = glewlwyd_sign_in(setup.idp, first.provider_url, LOGIN_CLIENT)
        assert_refused_page(gateway_callback(second, location), "callback with a state foreign to its gh_login cookie")
    setup.gateway.alive()


def test_deny_on_the_consent_page_sends_access_denied(setup: Setup) -> None:
    auth = begin(setup)
    with closing(auth.gateway_browser):
        location = glewlwyd_sign_in(setup.idp, auth.provider_url, LOGIN_CLIENT)
        page = consent_page(gateway_callback(auth, location))
        params = client_redirect(decide(auth, page, "deny"))
    assert params.get("error") == "access_denied", params
    assert "code" not in params, params
    assert params.get("state") == auth.state, params
    assert params.get("iss") == setup.public_url, f"RFC 9207 iss: {params}"


def test_provider_access_denied_reaches_the_client(setup: Setup) -> None:
    """The user fails to sign in at Glewlwyd (unknown user) and gives up.

    Glewlwyd 2.7.5 never redirects with error=access_denied (a refused password is a 401 from its
    REST API and the browser stays on login.html), so the browser delivers the provider's answer
    to the gateway itself: <gw>/oauth/callback?error=access_denied&state=<the real state>."""
    auth = begin(setup)
    with closing(auth.gateway_browser):
        with browser() as user:
            refused = glewlwyd_login(user, setup.idp, "mallory", "not-a-user")
            assert refused.status_code == 401, f"glewlwyd accepted an unknown user: {describe(refused)}"
            again = user.get(auth.provider_url + "&g_continue")
            assert again.status_code == 302 and "/login.html" in again.headers.get("location", ""), describe(again)
        state = auth.provider_params["state"]
        denied = f"{setup.callback_url}?" + urllib.parse.urlencode(
            {"error": "access_denied", "error_description": "The user denied the request", "state": state})
        params = client_redirect(gateway_callback(auth, denied))
    assert params.get("error") == "access_denied", params
    assert "code" not in params, params
    assert params.get("state") == auth.state, params
    if "iss" in params:
        assert params["iss"] == setup.public_url, params


def test_a_real_provider_error_never_yields_a_code(setup: Setup) -> None:
    """Glewlwyd's own error redirect: prompt=none without a session → error=interaction_required.

    The gateway must not produce a code: either it redirects to the client with an error, or it
    shows a 400 page."""
    auth = begin(setup)
    with closing(auth.gateway_browser):
        with browser() as user:  # no Glewlwyd session
            answer = user.get(auth.provider_url + "&prompt=none")
        location = answer.headers.get("location", "")
        assert answer.status_code == 302 and without_query(location) == setup.callback_url, describe(answer)
        assert query_of(location).get("error") == "interaction_required", location
        response = gateway_callback(auth, location)
    if response.status_code == 400:
        assert_refused_page(response, "callback with error=interaction_required")
        return
    params = client_redirect(response)
    assert params.get("error"), f"a provider error must reach the client as an error: {params}"
    assert "code" not in params, params
    assert params.get("state") == auth.state, params


# --- more refusals and the other gateways -----------------------------------------------------------


def assert_no_code(response: httpx2.Response, auth: Authorization, what: str) -> None:
    """Refused either way: a 400 page, or a redirect to the client with an error; never a code or a consent form."""
    if response.status_code in (302, 303):
        params = client_redirect(response)
        assert params.get("error") and "code" not in params, f"{what}: {params}"
        assert params.get("state") == auth.state, f"{what}: {params}"
        return
    assert_refused_page(response, what)


def test_callback_replayed_with_the_same_cookie_is_refused(setup: Setup) -> None:
    """The code and state were used once (consent page shown); the same callback again gets no consent page."""
    auth = begin(setup)
    with closing(auth.gateway_browser):
        location = glewlwyd_sign_in(setup.idp, auth.provider_url, LOGIN_CLIENT)
        consent_page(gateway_callback(auth, location))
    with browser() as replay:
        response = replay.get(location, headers={"Cookie": f"gh_login={auth.login_cookie}"})
    assert_no_code(response, auth, "the same callback (code, state, gh_login) a second time")
    assert not (response.status_code == 200 and 'name="csrf"' in response.text), (
        f"a replayed callback got a second consent page: {describe(response)}"
    )


def test_nonce_altered_on_the_way_to_the_provider_is_refused(setup: Setup) -> None:
    """The browser changes the nonce it carries to Glewlwyd: the id_token's nonce no longer matches."""
    auth = begin(setup)
    with closing(auth.gateway_browser):
        provider_url = with_query(auth.provider_url, nonce=tamper(auth.provider_params["nonce"]))
        location = glewlwyd_sign_in(setup.idp, provider_url, LOGIN_CLIENT)
        assert query_of(location).get("code"), location
        assert_no_code(gateway_callback(auth, location), auth, "an id_token whose nonce is not the one sent")
    setup.gateway.alive()


def test_code_challenge_altered_on_the_way_to_the_provider_is_refused(setup: Setup) -> None:
    """Glewlwyd binds the code to the altered challenge: the gateway's code_verifier cannot redeem it."""
    auth = begin(setup)
    with closing(auth.gateway_browser):
        _, other_challenge = pkce_pair()
        provider_url = with_query(auth.provider_url, code_challenge=other_challenge)
        location = glewlwyd_sign_in(setup.idp, provider_url, LOGIN_CLIENT)
        assert query_of(location).get("code"), location
        assert_no_code(gateway_callback(auth, location), auth, "a provider code bound to another code_challenge")
    setup.gateway.alive()


def test_consent_needs_its_csrf_cookie(setup: Setup) -> None:
    auth = begin(setup)
    with closing(auth.gateway_browser):
        location = glewlwyd_sign_in(setup.idp, auth.provider_url, LOGIN_CLIENT)
        page = consent_page(gateway_callback(auth, location))
    with browser() as stranger:  # no gh_csrf cookie
        response = stranger.post(page.action, data={"csrf": page.inputs["csrf"], "request": page.inputs["request"],
                                                    "decision": "allow"})
    location = response.headers.get("location", "")
    assert "code=" not in location, f"consent without its gh_csrf cookie produced a code: {describe(response)}"
    assert response.status_code in (400, 403) or "error=" in location, describe(response)


def test_login_state_cannot_stand_in_for_the_consent_request(setup: Setup) -> None:
    """The state sent to the provider is visible to it; posted as the consent `request` (with a matching
    csrf pair), it must not yield a code without anyone signing in."""
    auth = begin(setup)
    auth.gateway_browser.close()
    state = auth.provider_params["state"]
    csrf = secrets.token_urlsafe(32)
    with browser() as attacker:
        response = attacker.post(f"{setup.gateway.base_url}/oauth/authorize",
                                 data={"csrf": csrf, "request": state, "decision": "allow"},
                                 headers={"Cookie": f"gh_csrf={csrf}"})
    location = response.headers.get("location", "")
    assert "code=" not in location, f"the login state was accepted as a consent request: {describe(response)}"
    assert response.status_code == 400 or "error=" in location, describe(response)


@pytest.mark.anyio
async def test_login_state_and_consent_request_are_not_access_tokens(setup: Setup) -> None:
    """Both are signed by the gateway (the state travels through the provider); neither opens /mcp."""
    auth = begin(setup)
    with closing(auth.gateway_browser):
        location = glewlwyd_sign_in(setup.idp, auth.provider_url, LOGIN_CLIENT)
        page = consent_page(gateway_callback(auth, location))
    for what, value in (("the login state", auth.provider_params["state"]), ("the consent request", page.inputs["request"])):
        reply = await initialize_raw(setup.gateway.mcp_url, value)
        assert reply.status == 401, f"{what} used as a bearer token at /mcp: expected 401, got {reply.describe()}"


@pytest.mark.anyio
async def test_subject_claim_preferred_username_and_default_scopes(world: dict[str, Setup]) -> None:
    setup = world["username"]
    auth = begin(setup)
    with closing(auth.gateway_browser):
        assert set(auth.provider_params.get("scope", "").split()) == {"openid", "email", "profile"}, (
            f"login.oidc.scopes defaults to [openid, email, profile]: {auth.provider_params}"
        )
        location = glewlwyd_sign_in(setup.idp, auth.provider_url, LOGIN_CLIENT)
        page = consent_page(gateway_callback(auth, location))
        params = client_redirect(decide(auth, page, "allow"))
    response = token_exchange(setup, auth, params["code"])
    assert response.status_code == 200, f"token exchange: {describe(response)}"
    token = response.json()["access_token"]
    _, claims = jwt_parts(token)
    assert claims.get("sub") == USERNAME, (
        f"subjectClaim preferred_username: sub should be {USERNAME!r} (Glewlwyd's preferred_username), claims: {claims}"
    )
    assert claims.get("iss") == setup.public_url, claims
    assert await sdk_echo(setup.gateway.mcp_url, token, "as alice") == "as alice"


def test_missing_subject_claim_is_refused(world: dict[str, Setup]) -> None:
    """subjectClaim names a claim the id_token lacks: no consent, no code (and no fallback to sub)."""
    setup = world["missing-claim"]
    auth = begin(setup)
    with closing(auth.gateway_browser):
        location = glewlwyd_sign_in(setup.idp, auth.provider_url, LOGIN_CLIENT)
        response = gateway_callback(auth, location)
    assert response.status_code != 200, (
        f"subjectClaim 'nickname' is absent from the id_token, yet the callback went on to the consent page: "
        f"{describe(response)}"
    )
    assert_no_code(response, auth, "an id_token without the subjectClaim")
    setup.gateway.alive()
