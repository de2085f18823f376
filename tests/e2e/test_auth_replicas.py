"""Two gateway replicas sharing PostgreSQL: the embedded authorization server and API keys.

Replicas A and B listen on their own ports but share everything that makes them one service:
`spec.storage.postgres.url` (from GATEHOUSE_POSTGRES_URL, a throw-away server from pg.py),
`spec.sessions.key`, and `spec.auth.publicURL` (A's URL on both, so the issuer and the resource
`<publicURL>/mcp` are identical). The authorization server has a user `alice` (hash from
`gatehouse hash-password`), a confidential client `ci-bot` (client_credentials) and a public
client `e2e-public` (authorization_code + refresh_token, one redirect URI). `cacheSeconds: 1`.

1. an access token from A's token endpoint works on B, and B's on A;
2. an API key made with `gatehouse apikey create --config <B>` works on A; after
   `gatehouse apikey revoke --config <A>` it fails on both within cacheSeconds (+ slack);
3. the login page driven like a browser, across replicas (page from A, form posted to B);
4. refresh-token rotation under concurrency, 10 times: one refresh token sent to A and B at the
   same instant → exactly one 200, the other 400 invalid_grant; the winner's new refresh token is
   then refused too (reuse revokes the whole family).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from auth_e2e import (
    AuthGateway,
    assert_accepted,
    assert_invalid_token,
    authorization_code_flow,
    describe,
    gatehouse,
    hash_password,
    http_client,
    initialize_raw,
    json_of,
    jwt_header_claims,
    parse_login_page,
    pkce_pair,
    sdk_echo,
    start_auth_gateway,
    token_request,
)
from conftest import free_port
from pg import Postgres, require_postgres, start_postgres

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

CACHE_SECONDS = 1
REVOCATION_SLACK = 1.5  # seconds beyond cacheSeconds: process scheduling, one in-flight request
RACE_ROUNDS = 10
ALICE_PASSWORD = "correct horse battery staple"
CI_BOT = "ci-bot"
PUBLIC_CLIENT = "e2e-public"
REDIRECT_URI = "http://127.0.0.1:9/callback"


@dataclass
class Replicas:
    a: AuthGateway
    b: AuthGateway
    pg: Postgres
    public_url: str
    ci_bot_secret: str

    @property
    def resource(self) -> str:
        return f"{self.public_url}/mcp"

    @property
    def both(self) -> tuple[AuthGateway, AuthGateway]:
        return self.a, self.b

    def other(self, gateway: AuthGateway) -> AuthGateway:
        return self.b if gateway is self.a else self.a

    def alive(self) -> None:
        for gateway in self.both:
            gateway.alive()
        assert self.pg.proc.popen.poll() is None, f"postgres died\n{self.pg.proc.describe()}"


@pytest.fixture(scope="module")
def replicas(log_root: Path) -> Iterator[Replicas]:
    require_postgres()
    log_dir = log_root / "auth-replicas"
    log_dir.mkdir(exist_ok=True)
    pg = start_postgres(log_dir)
    gateways: list[AuthGateway] = []
    try:
        port_a, port_b = free_port(), free_port()
        public_url = f"http://127.0.0.1:{port_a}"
        ci_bot_secret = secrets.token_urlsafe(24)
        env = {
            "GATEHOUSE_POSTGRES_URL": pg.url,
            "ALICE_HASH": hash_password(ALICE_PASSWORD),
            "CI_BOT_SECRET": ci_bot_secret,
        }
        auth = {
            "publicURL": public_url,
            "cacheSeconds": CACHE_SECONDS,
            "apiKeys": True,
            "authorizationServer": {
                "accessTokenSeconds": 600,
                "refreshTokenSeconds": 3600,
                "scopes": ["mcp"],
                "users": [{"username": "alice", "passwordHash": {"valueFrom": {"env": "ALICE_HASH"}}}],
                "clients": [
                    {"clientID": CI_BOT, "clientSecret": {"valueFrom": {"env": "CI_BOT_SECRET"}},
                     "grantTypes": ["client_credentials"], "scopes": ["mcp"], "redirectURIs": []},
                    {"clientID": PUBLIC_CLIENT, "grantTypes": ["authorization_code", "refresh_token"],
                     "scopes": ["mcp"], "redirectURIs": [REDIRECT_URI]},
                ],
                "registration": {"dynamic": False},
            },
        }
        storage = {"postgres": {"url": {"valueFrom": {"env": "GATEHOUSE_POSTGRES_URL"}}}}
        key = base64.b64encode(os.urandom(48)).decode()
        # A first (it creates the schema), then B against the same database
        for name, port in (("replica-a", port_a), ("replica-b", port_b)):
            gateways.append(start_auth_gateway(log_dir, name, port, auth, storage=storage, sessions_key=key, env=env))
        yield Replicas(a=gateways[0], b=gateways[1], pg=pg, public_url=public_url, ci_bot_secret=ci_bot_secret)
    finally:
        for gateway in gateways:
            gateway.stop()
        pg.stop()


@pytest.fixture
def rs(replicas: Replicas) -> Iterator[Replicas]:
    replicas.alive()
    yield replicas
    # shown by pytest only when the test failed ("Captured stdout teardown")
    for gateway in replicas.both:
        print(f"--- {gateway.name} output (tail) ---\n{gateway.proc.output(limit=3000)}")


def client_credentials(rs: Replicas, gateway: AuthGateway) -> dict[str, Any]:
    response = token_request(
        gateway.base_url,
        {"grant_type": "client_credentials", "scope": "mcp", "resource": rs.resource},
        auth=(CI_BOT, rs.ci_bot_secret),
    )
    assert response.status_code == 200, f"client_credentials on {gateway.name}: {describe(response)}"
    body = json_of(response)
    assert body.get("access_token"), body
    assert str(body.get("token_type", "")).lower() == "bearer", body
    return body


def jwks_kids(gateway: AuthGateway) -> set[str]:
    with http_client() as http:
        response = http.get(f"{gateway.base_url}/oauth/jwks")
    assert response.status_code == 200, describe(response)
    return {key.get("kid") for key in json_of(response).get("keys", [])}


def test_both_replicas_are_one_issuer(rs: Replicas) -> None:
    documents = []
    for gateway in rs.both:
        with http_client() as http:
            response = http.get(f"{gateway.base_url}/.well-known/oauth-authorization-server")
        assert response.status_code == 200, describe(response)
        documents.append(json_of(response))
    for document in documents:
        assert document.get("issuer") == rs.public_url, document
        assert document.get("token_endpoint") == f"{rs.public_url}/oauth/token", document
    assert jwks_kids(rs.a) == jwks_kids(rs.b), "the replicas publish different signing keys"


@pytest.mark.parametrize("direction", ["a-to-b", "b-to-a"])
async def test_token_from_one_replica_works_on_the_other(rs: Replicas, direction: str) -> None:
    source, target = (rs.a, rs.b) if direction == "a-to-b" else (rs.b, rs.a)
    token = client_credentials(rs, source)["access_token"]
    header, claims = jwt_header_claims(token)
    assert header.get("alg") == "ES256", header
    assert claims.get("iss") == rs.public_url, claims
    assert claims.get("aud") in (rs.resource, [rs.resource]), claims
    assert claims.get("sub") == CI_BOT and claims.get("client_id") == CI_BOT, claims
    assert header.get("kid") in jwks_kids(target), f"{source.name}'s kid {header.get('kid')} not in {target.name}'s JWKS"
    text = await sdk_echo(target.mcp_url, token, f"{direction} with a token from {source.name}")
    assert text == f"{direction} with a token from {source.name}"
    await assert_accepted(source.mcp_url, token, f"the token on its own replica {source.name}")


# --- API keys -------------------------------------------------------------------------------------


_KEY = re.compile(r"\bghk_[A-Za-z0-9_\-]+")


def apikey_id(name: str, listing: str) -> str:
    """The id of the key called `name` in `gatehouse apikey list` output (JSON or a table)."""
    try:
        data = json.loads(listing)
    except ValueError:
        data = None
    if isinstance(data, dict):
        data = data.get("keys") or data.get("items") or []
    if isinstance(data, list):
        for entry in data:
            if isinstance(entry, dict) and entry.get("name") == name:
                return str(entry.get("id") or entry.get("ID"))
    for line in listing.splitlines():
        fields = re.split(r"\s{2,}|\t|\s\|\s|\s", line.strip())
        if name in fields:
            first = fields[0].strip("|").strip()
            if first != name:
                return first
    raise AssertionError(f"no key named {name!r} in `gatehouse apikey list`:\n{listing}")


async def test_api_key_from_one_replica_works_on_the_other_and_revocation_reaches_both(rs: Replicas) -> None:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    created = gatehouse("apikey", "create", "--config", str(rs.b.config_path), "--name", name, "--owner", "alice",
                        "--scope", "mcp", env=rs.b.env)
    keys = _KEY.findall(created.stdout)
    assert len(keys) == 1, f"`gatehouse apikey create` should print the key (ghk_...) once: {created.stdout!r}"
    key = keys[0]
    assert key not in created.stderr

    await assert_accepted(rs.a.mcp_url, key, f"API key made with B's config, on {rs.a.name}")
    assert await sdk_echo(rs.a.mcp_url, key, "api key on A") == "api key on A"
    await assert_accepted(rs.b.mcp_url, key, f"API key on {rs.b.name}")

    listing = gatehouse("apikey", "list", "--config", str(rs.a.config_path), env=rs.a.env).stdout
    assert key not in listing, "`apikey list` must not print the key itself"
    key_id = apikey_id(name, listing)
    gatehouse("apikey", "revoke", "--config", str(rs.a.config_path), key_id, env=rs.a.env)
    revoked_at = time.monotonic()
    deadline = revoked_at + CACHE_SECONDS + REVOCATION_SLACK

    refused_after: dict[str, float] = {}
    last: dict[str, Any] = {}
    while len(refused_after) < 2 and time.monotonic() < deadline:
        for gateway in rs.both:
            if gateway.name in refused_after:
                continue
            reply = await initialize_raw(gateway.mcp_url, key)
            last[gateway.name] = reply
            if reply.status != 200:
                assert_invalid_token(reply, f"revoked API key on {gateway.name}")
                refused_after[gateway.name] = time.monotonic() - revoked_at
        time.sleep(0.05)
    still = [g.name for g in rs.both if g.name not in refused_after]
    assert not still, (
        f"a revoked API key still works on {still} {CACHE_SECONDS + REVOCATION_SLACK:.1f}s after `apikey revoke` "
        f"(cacheSeconds={CACHE_SECONDS}); last replies: {[last[n].describe() for n in still]}"
    )
    print(f"revoked API key refused after: {refused_after}")
    for gateway in rs.both:  # and it stays refused
        assert_invalid_token(await initialize_raw(gateway.mcp_url, key), f"revoked API key on {gateway.name}, later")


# --- authorization code + refresh tokens ----------------------------------------------------------


def login_and_exchange(rs: Replicas, page: AuthGateway, form: AuthGateway, exchange: AuthGateway) -> dict[str, Any]:
    grant = authorization_code_flow(
        page.base_url, form.base_url, client_id=PUBLIC_CLIENT, redirect_uri=REDIRECT_URI, username="alice",
        password=ALICE_PASSWORD, resource=rs.resource, issuer=rs.public_url,
    )
    response = token_request(exchange.base_url, {
        "grant_type": "authorization_code", "code": grant.code, "redirect_uri": REDIRECT_URI,
        "code_verifier": grant.verifier, "client_id": PUBLIC_CLIENT, "resource": rs.resource,
    })
    assert response.status_code == 200, f"authorization_code on {exchange.name}: {describe(response)}"
    body = json_of(response)
    assert body.get("access_token") and body.get("refresh_token"), f"expected an access and a refresh token: {body}"
    return body


def refresh_form(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": PUBLIC_CLIENT}


def assert_invalid_grant(response: httpx2.Response, what: str) -> None:
    assert response.status_code == 400, f"{what}: expected 400 invalid_grant, got {describe(response)}"
    assert json_of(response).get("error") == "invalid_grant", f"{what}: {describe(response)}"


async def test_login_across_replicas(rs: Replicas) -> None:
    """The login page from A, the form posted to B, the code exchanged on A; the token works on B."""
    tokens = login_and_exchange(rs, rs.a, rs.b, rs.a)
    _, claims = jwt_header_claims(tokens["access_token"])
    assert claims.get("sub") == "alice" and claims.get("client_id") == PUBLIC_CLIENT, claims
    assert claims.get("aud") in (rs.resource, [rs.resource]), claims
    assert await sdk_echo(rs.b.mcp_url, tokens["access_token"], "alice on B") == "alice on B"
    # one plain refresh, on the other replica than the one that issued it
    refreshed = token_request(rs.b.base_url, refresh_form(tokens["refresh_token"]))
    assert refreshed.status_code == 200, f"refresh on B: {describe(refreshed)}"
    body = json_of(refreshed)
    assert body.get("refresh_token") and body["refresh_token"] != tokens["refresh_token"], f"not rotated: {body}"


def race(rs: Replicas, refresh_token: str) -> dict[str, httpx2.Response]:
    """POST the same refresh token to A and B at the same instant (threads behind a barrier)."""
    barrier = threading.Barrier(2)
    results: dict[str, httpx2.Response] = {}
    errors: list[BaseException] = []

    def worker(gateway: AuthGateway) -> None:
        try:
            with http_client() as http:
                http.get(f"{gateway.base_url}/healthz")  # open the connection first: only the POST races
                barrier.wait(timeout=10)
                results[gateway.name] = http.post(f"{gateway.base_url}/oauth/token", data=refresh_form(refresh_token))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(gateway,)) for gateway in rs.both]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, f"race request failed: {errors!r}"
    assert len(results) == 2, f"race: answers from {sorted(results)} only"
    return results


def test_refresh_token_rotation_race_across_replicas(rs: Replicas) -> None:
    outcomes = []
    for round_number in range(RACE_ROUNDS):
        issuer_replica = rs.a if round_number % 2 == 0 else rs.b
        tokens = login_and_exchange(rs, issuer_replica, issuer_replica, issuer_replica)
        results = race(rs, tokens["refresh_token"])
        winners = [name for name, response in results.items() if response.status_code == 200]
        summary = {name: describe(response) for name, response in results.items()}
        assert len(winners) == 1, f"round {round_number}: exactly one refresh must win, got {summary}"
        winner_name = winners[0]
        loser_name = next(name for name in results if name != winner_name)
        assert_invalid_grant(results[loser_name], f"round {round_number}: the losing refresh on {loser_name}")
        new_refresh = json_of(results[winner_name]).get("refresh_token")
        assert new_refresh and new_refresh != tokens["refresh_token"], (
            f"round {round_number}: the winner got no rotated refresh token: {summary[winner_name]}"
        )
        # reuse was detected: the family is revoked, the winner's fresh refresh token with it
        loser = rs.a if loser_name == rs.a.name else rs.b
        assert_invalid_grant(
            token_request(loser.base_url, refresh_form(new_refresh)),
            f"round {round_number}: the winner's new refresh token after reuse of its parent (family revoked)",
        )
        outcomes.append(winner_name)
    print(f"race winners: {outcomes}")


# --- the sign-in page: single-use forms and throttling, shared through PostgreSQL -------------


def login_page(gateway: AuthGateway, rs: Replicas) -> tuple[dict[str, str], str]:
    """GET the sign-in page on `gateway`; its hidden inputs and its gh_csrf cookie."""
    _, challenge = pkce_pair()
    query = {"response_type": "code", "client_id": PUBLIC_CLIENT, "redirect_uri": REDIRECT_URI, "code_challenge": challenge,
             "code_challenge_method": "S256", "state": "s", "scope": "mcp", "resource": rs.resource}
    with http_client() as http:
        page = http.get(f"{gateway.base_url}/oauth/authorize", params=query)
    assert page.status_code == 200, describe(page)
    cookie = page.cookies.get("gh_csrf")
    assert cookie, page.headers.get_list("set-cookie")
    return parse_login_page(page.text), cookie


def post_login(gateway: AuthGateway, inputs: dict[str, str], cookie: str, username: str, password: str) -> httpx2.Response:
    form = {"csrf": inputs["csrf"], "request": inputs["request"], "username": username, "password": password, "decision": "allow"}
    with http_client() as http:
        return http.post(f"{gateway.base_url}/oauth/authorize", data=form, headers={"Cookie": f"gh_csrf={cookie}"})


def test_sign_in_form_cannot_be_replayed_on_the_other_replica(rs: Replicas) -> None:
    inputs, cookie = login_page(rs.a, rs)
    first = post_login(rs.a, inputs, cookie, "alice", ALICE_PASSWORD)
    assert first.status_code == 302 and "code=" in first.headers.get("location", ""), describe(first)
    replay = post_login(rs.b, inputs, cookie, "alice", ALICE_PASSWORD)
    assert replay.status_code == 400 and "location" not in replay.headers, f"replayed form on B: {describe(replay)}"


def test_failed_sign_ins_are_counted_across_replicas(rs: Replicas) -> None:
    """Five failures for one account, alternating replicas, lock it on both (429 + Retry-After)."""
    username = "mallory-" + secrets.token_hex(4)  # unknown users count too; alice stays usable
    inputs, cookie = login_page(rs.a, rs)
    for attempt in range(1, 6):
        gateway = rs.a if attempt % 2 else rs.b
        response = post_login(gateway, inputs, cookie, username, f"guess {attempt}")
        expected = 401 if attempt < 5 else 429
        assert response.status_code == expected, f"attempt {attempt} on {gateway.name}: {describe(response)}"
        inputs = parse_login_page(response.text)  # the answer carries a fresh form
    for gateway in rs.both:
        inputs, cookie = login_page(gateway, rs)
        response = post_login(gateway, inputs, cookie, username, "another guess")
        assert response.status_code == 429, f"locked account on {gateway.name}: {describe(response)}"
        assert int(response.headers.get("retry-after", "0")) > 0, describe(response)
