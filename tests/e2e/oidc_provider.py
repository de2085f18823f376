"""A real, external OpenID Connect provider for the auth tests: Glewlwyd (Debian package `glewlwyd`).

`start_glewlwyd(log_dir, resources)` builds a throw-away Glewlwyd in `log_dir`:

- a SQLite database made from the package's own schema
  (/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3, which also creates the
  administrator `admin` / `password`);
- one OIDC plugin instance `oidc` signing with a fresh 2048-bit RSA key (RS256), with
  RFC 8707 resource indicators allowed for scope `mcp` on exactly `resources`;
- a confidential client (`client_credentials`, scope `mcp`, client_secret_basic/post),
  created through the admin API;
- listening on 127.0.0.1 and a free port; ready once its JWKS answers.

Facts verified against Glewlwyd 2.7.5 (Debian bookworm), asserted again by `check_token()`:

- issuer: `http://127.0.0.1:<port>/api/oidc` (external_url + "/api/oidc"); discovery at
  `<issuer>/.well-known/openid-configuration`, whose `jwks_uri` is `<issuer>/jwks` and
  `token_endpoint` is `<issuer>/token`;
- the resource is sent as the form field `resource=<URL>` on the token request
  (client_credentials, HTTP Basic client authentication);
- the access token is a compact JWS, header `{"alg": "RS256", "kid": ..., "typ": "at+jwt"}`,
  and the resource lands in the `aud` claim (see AUDIENCE_CLAIM_NOTE below for the exact shape).

If the binary is missing, `require_glewlwyd()` skips the calling test with the reason;
scripts/test installs the package when it runs as root.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import Proc, free_port

GLEWLWYD_BIN = shutil.which("glewlwyd") or "/usr/bin/glewlwyd"
SCHEMA = Path("/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3")
CONF_TEMPLATE = Path("/etc/glewlwyd/glewlwyd.conf")
ADMIN = ("admin", "password")  # created by the package's SQLite schema
READY_TIMEOUT = 20.0
SCOPE = "mcp"


def glewlwyd_missing() -> str | None:
    """Why Glewlwyd cannot run here, or None when it can."""
    if not Path(GLEWLWYD_BIN).is_file():
        return f"glewlwyd not installed (no {GLEWLWYD_BIN}): apt-get install -y glewlwyd (scripts/test does, as root)"
    for needed in (SCHEMA, CONF_TEMPLATE):
        if not needed.is_file():
            return f"glewlwyd is installed but {needed} is missing (reinstall the Debian package glewlwyd)"
    return None


def require_glewlwyd() -> None:
    reason = glewlwyd_missing()
    if reason:
        pytest.skip(reason)


# --- helpers ------------------------------------------------------------------------------------


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS, without verifying it."""
    pieces = token.split(".")
    if len(pieces) != 3:
        raise AssertionError(f"not a compact JWS (expected 3 dot-separated parts, got {len(pieces)}): {token[:80]}...")
    return json.loads(b64url_decode(pieces[0])), json.loads(b64url_decode(pieces[1]))


def rsa_keypair_pem() -> tuple[str, str]:
    """A fresh 2048-bit RSA key: (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


def sign_rs256(header: dict[str, Any], claims: dict[str, Any], private_pem: str) -> str:
    """A compact RS256 JWS over (header, claims) with the given key (for forged tokens)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
    return signing_input + "." + b64url(signature)


# --- the provider -------------------------------------------------------------------------------


@dataclass
class OIDCProvider:
    port: int
    directory: Path
    proc: Proc
    resources: list[str]
    client_id: str = "gatehouse-e2e"
    client_secret: str = "e2e-client-secret"
    private_key_pem: str = ""
    discovery: dict[str, Any] = field(default_factory=dict)
    jwks: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/api/oidc"

    @property
    def token_endpoint(self) -> str:
        return self.discovery.get("token_endpoint") or f"{self.issuer}/token"

    @property
    def jwks_uri(self) -> str:
        return self.discovery.get("jwks_uri") or f"{self.issuer}/jwks"

    @property
    def kids(self) -> list[str]:
        return [key.get("kid", "") for key in self.jwks.get("keys", [])]

    def token_response(self, resource: str | None, scope: str = SCOPE, *, secret: str | None = None) -> httpx2.Response:
        """POST client_credentials to the token endpoint (client_secret_basic), `resource=` when given."""
        form = {"grant_type": "client_credentials", "scope": scope}
        if resource is not None:
            form["resource"] = resource
        with httpx2.Client(timeout=10.0, trust_env=False) as http:
            return http.post(
                self.token_endpoint, data=form, auth=(self.client_id, secret if secret is not None else self.client_secret)
            )

    def mint(self, resource: str, scope: str = SCOPE) -> str:
        """An access token for `resource` (its audience), via client_credentials."""
        response = self.token_response(resource, scope)
        if response.status_code != 200:
            raise AssertionError(
                f"glewlwyd token endpoint {self.token_endpoint} (client_credentials, resource={resource}) -> "
                f"HTTP {response.status_code}: {response.text[:500]}\n{self.proc.describe()}"
            )
        body = response.json()
        token = body.get("access_token")
        if not token:
            raise AssertionError(f"no access_token in glewlwyd's answer: {body}")
        return token

    def check_token(self, token: str, resource: str) -> dict[str, Any]:
        """Assert what the tests rely on (JWT, RS256, a published kid, iss, aud ∋ resource); return the claims."""
        header, claims = jwt_parts(token)
        assert header.get("alg") == "RS256", f"glewlwyd token header: {header}"
        assert header.get("kid") in self.kids, f"token kid {header.get('kid')!r} not in the JWKS kids {self.kids}"
        assert claims.get("iss") == self.issuer, f"iss {claims.get('iss')!r} != {self.issuer!r}"
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        assert resource in audiences, f"resource {resource} not in aud {aud!r}; claims: {claims}"
        return claims

    def stop(self) -> None:
        self.proc.stop()


def _write_database(path: Path, issuer: str, private_pem: str, public_pem: str, resources: list[str]) -> None:
    oidc = {
        "iss": issuer,
        "jwt-type": "rsa",
        "jwt-key-size": "256",  # RS256
        "key": private_pem,
        "cert": public_pem,
        "jwks-show": True,
        "access-token-duration": 3600,
        "refresh-token-duration": 1209600,
        "code-duration": 600,
        "refresh-token-rolling": True,
        "allow-non-oidc": True,
        "auth-type-code-enabled": True,
        "auth-type-client-enabled": True,  # client_credentials
        "auth-type-refresh-enabled": True,
        "auth-type-none-enabled": True,
        "auth-type-token-enabled": False,
        "auth-type-id-token-enabled": True,
        "auth-type-password-enabled": False,
        "pkce-allowed": True,
        "pkce-method-plain-allowed": False,
        "subject-type": "public",
        "scope": [{"name": SCOPE, "refresh-token-rolling": True}, {"name": "openid", "refresh-token-rolling": True}],
        # RFC 8707: `resource=` accepted for scope mcp when it is one of these URLs; it becomes the audience.
        "resource-allowed": True,
        "resource-scope": {SCOPE: resources},
        "resource-change-allowed": False,
        "register-client-allowed": False,
    }
    db = sqlite3.connect(path)
    try:
        db.executescript(SCHEMA.read_text())
        db.execute(
            "INSERT INTO g_plugin_module_instance (gpmi_module, gpmi_name, gpmi_display_name, gpmi_parameters, gpmi_enabled)"
            " VALUES ('oidc', 'oidc', 'OpenID Connect', ?, 1)",
            (json.dumps(oidc),),
        )
        db.execute(
            "INSERT INTO g_scope (gs_name, gs_display_name, gs_description, gs_password_required, gs_password_max_age)"
            " VALUES (?, 'MCP', 'MCP access through Gatehouse', 0, 0)",
            (SCOPE,),
        )
        db.commit()
    finally:
        db.close()


def _write_config(path: Path, port: int, database: Path) -> None:
    """The package's own glewlwyd.conf, adapted: our port, loopback only, console log, our SQLite file."""
    text = CONF_TEMPLATE.read_text()
    replacements = [
        (r"(?m)^port\s*=.*$", f"port={port}\nbind_address=\"127.0.0.1\""),
        (r"(?m)^external_url\s*=.*$", f'external_url="http://127.0.0.1:{port}"'),
        (r"(?m)^log_mode\s*=.*$", 'log_mode="console"'),
        (r"(?m)^log_level\s*=.*$", 'log_level="INFO"'),
        (r'(?m)^@include\s+"[^"]*glewlwyd-db\.conf"\s*$', f'database = {{ type = "sqlite3" path = "{database}" }};'),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement.replace("\\", "\\\\"), text)
        if count != 1:
            raise AssertionError(f"{CONF_TEMPLATE}: expected exactly one line matching /{pattern}/, found {count}")
    path.write_text(text)


def _wait_json(proc: Proc, url: str, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx2.Client(timeout=1.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                break
            try:
                response = http.get(url)
                if response.status_code == 200:
                    return response.json()
                last = f"HTTP {response.status_code}: {response.text[:300]}"
            except (httpx2.HTTPError, ValueError) as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(0.1)
    raise AssertionError(f"glewlwyd: {url} did not answer 200 within {timeout:.0f}s (last: {last})\n{proc.describe()}")


def _admin_setup(provider: OIDCProvider) -> None:
    api = f"{provider.base_url}/api"
    with httpx2.Client(timeout=10.0, trust_env=False) as http:
        login = http.post(f"{api}/auth/", json={"username": ADMIN[0], "password": ADMIN[1]})
        if login.status_code != 200:
            raise AssertionError(f"glewlwyd admin login -> HTTP {login.status_code}: {login.text[:300]}")
        client = {
            "client_id": provider.client_id,
            "name": provider.client_id,
            "confidential": True,
            "password": provider.client_secret,
            "enabled": True,
            "redirect_uri": ["http://127.0.0.1:9/callback"],
            "authorization_type": ["client_credentials"],
            "scope": [SCOPE],
            "token_endpoint_auth_method": ["client_secret_basic", "client_secret_post"],
        }
        created = http.post(f"{api}/client/", params={"source": "database"}, json=client)
        if created.status_code != 200:
            raise AssertionError(f"glewlwyd: creating client {provider.client_id} -> HTTP {created.status_code}: {created.text[:300]}")


def start_glewlwyd(log_dir: Path, resources: list[str], name: str = "glewlwyd") -> OIDCProvider:
    """Set up and start Glewlwyd in log_dir/name; returns once its JWKS answers and the client exists."""
    require_glewlwyd()
    directory = log_dir / name
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/api/oidc"
    private_pem, public_pem = rsa_keypair_pem()
    database = directory / "glewlwyd.db"
    database.unlink(missing_ok=True)
    _write_database(database, issuer, private_pem, public_pem, resources)
    config = directory / "glewlwyd.conf"
    _write_config(config, port, database)
    proc = Proc(name, [GLEWLWYD_BIN, f"--config-file={config}"], directory)
    provider = OIDCProvider(port=port, directory=directory, proc=proc, resources=list(resources), private_key_pem=private_pem)
    try:
        provider.jwks = _wait_json(proc, f"{issuer}/jwks")
        provider.discovery = _wait_json(proc, f"{issuer}/.well-known/openid-configuration")
        _admin_setup(provider)
    except BaseException:
        proc.stop()
        raise
    return provider


def glewlwyd_provider(log_dir: Path, resources: list[str]) -> Iterator[OIDCProvider]:
    """Generator body for a fixture: `yield from glewlwyd_provider(dir, [...])` starts and stops it."""
    provider = start_glewlwyd(log_dir, resources)
    try:
        yield provider
    finally:
        provider.stop()
