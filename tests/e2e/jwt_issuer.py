"""A tiny OpenID issuer for the auth tests: discovery documents and a JWKS over plain HTTP.

It runs in a thread of the test process (stdlib http.server on 127.0.0.1, a free port) and
mints tokens itself (PyJWT + cryptography, which mcp 2.3.0 pulls in as pyjwt[crypto]).

    with TestIssuer() as issuer:
        token = issuer.mint(aud="http://127.0.0.1:8080/mcp", scope="mcp")          # RS256
        token = issuer.mint(alg="EdDSA", aud=..., scp=["mcp"])
        issuer.jwks_fetches            # how many times /jwks was served
        issuer.fail = True             # every request answers 500 from now on
        issuer.rotate()                # a new key set with new kids (the old keys are gone)

The issuer has a path (`<base>/oidc`); discovery is served at every place a client may look:
`<issuer>/.well-known/openid-configuration` (OIDC) and
`<base>/.well-known/{openid-configuration,oauth-authorization-server}/oidc` (RFC 8414), plus
`<issuer>/.well-known/oauth-authorization-server`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER_PATH = "/oidc"
JWKS_PATH = "/oidc/jwks"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    alg: str  # RS256 | ES256 | EdDSA
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        if self.alg == "RS256":
            jwk = RSAAlgorithm.to_jwk(self.public, as_dict=True)
        elif self.alg == "ES256":
            jwk = ECAlgorithm.to_jwk(self.public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(self.public, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def new_key(alg: str, kid: str | None = None) -> SigningKey:
    kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:12]}"
    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(alg)
    return SigningKey(kid=kid, alg=alg, private=private)


def new_key_set() -> dict[str, SigningKey]:
    return {alg: new_key(alg) for alg in ("RS256", "ES256", "EdDSA")}


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """header.claims.signature assembled by hand (for alg:none and forged signatures)."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hs256_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token with any bytes as the secret (PyJWT refuses PEM-looking HMAC secrets)."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


class TestIssuer:
    __test__ = False  # not a pytest test class

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.keys = new_key_set()
        self.fail = False
        self.discovery = True  # False: the discovery documents answer 404 (only the JWKS is served)
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.requests: list[tuple[str, int]] = []  # (path, status) of every request, in order
        self._lock = threading.Lock()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet; issuer.requests records what happened

            def do_GET(self) -> None:  # noqa: N802
                issuer._serve(self)

            def do_POST(self) -> None:  # noqa: N802
                issuer._serve(self)

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self.issuer = self.base_url + ISSUER_PATH
        self.jwks_url = self.base_url + JWKS_PATH
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-issuer", daemon=True)
        self._thread.start()

    # --- lifecycle ---

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> TestIssuer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- state ---

    def rotate(self) -> dict[str, SigningKey]:
        """Replace every key with a new one (new kids); returns the new set."""
        with self._lock:
            self.keys = new_key_set()
            return dict(self.keys)

    def key(self, alg: str = "RS256") -> SigningKey:
        with self._lock:
            return self.keys[alg]

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [key.jwk() for key in self.keys.values()]}

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
        }

    def log(self) -> str:
        with self._lock:
            return ", ".join(f"{path}->{status}" for path, status in self.requests[-40:])

    # --- HTTP ---

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        discovery_paths = {
            f"{ISSUER_PATH}/.well-known/openid-configuration",
            f"{ISSUER_PATH}/.well-known/oauth-authorization-server",
            f"/.well-known/openid-configuration{ISSUER_PATH}",
            f"/.well-known/oauth-authorization-server{ISSUER_PATH}",
        }
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        status, body = 404, {"error": "not_found"}
        if self.fail:
            status, body = 500, {"error": "server_error"}
        elif path == JWKS_PATH:
            status, body = 200, self.jwks()
        elif path in discovery_paths and self.discovery:
            status, body = 200, self.metadata()
        with self._lock:
            if path == JWKS_PATH:
                self.jwks_fetches += 1
            elif path in discovery_paths:
                self.discovery_fetches += 1
            self.requests.append((path, status))
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        handler.wfile.write(data)

    # --- tokens ---

    def claims(self, aud: str | list[str] | None, *, lifetime: float = 300, **extra: Any) -> dict[str, Any]:
        """Standard claims; `extra` overrides or adds (None removes a claim)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": aud,
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "jti": uuid.uuid4().hex,
            "client_id": "e2e-client",
        }
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self,
        aud: str | list[str] | None,
        *,
        alg: str = "RS256",
        key: SigningKey | None = None,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with `alg` by this issuer's key for it (or by `key`), kid from the key unless given."""
        key = key or self.key(alg)
        header = {"kid": kid or key.kid, **(headers or {})}
        return jwt.encode(self.claims(aud, **claims), key.private, algorithm=alg, headers=header)


if __name__ == "__main__":  # a standalone check of the issuer itself
    import urllib.request

    with TestIssuer() as issuer:
        for path in (f"{ISSUER_PATH}/.well-known/openid-configuration", f"/.well-known/oauth-authorization-server{ISSUER_PATH}"):
            meta = json.load(urllib.request.urlopen(issuer.base_url + path))
            assert meta["issuer"] == issuer.issuer and meta["jwks_uri"] == issuer.jwks_url, meta
        jwks = json.load(urllib.request.urlopen(issuer.jwks_url))
        assert {k["kty"] for k in jwks["keys"]} == {"RSA", "EC", "OKP"}, jwks
        client = jwt.PyJWKClient(issuer.jwks_url)
        for alg in ("RS256", "ES256", "EdDSA"):
            token = issuer.mint("aud-x", alg=alg, scope="mcp")
            signing = client.get_signing_key_from_jwt(token)
            decoded = jwt.decode(token, signing.key, algorithms=[alg], audience="aud-x", issuer=issuer.issuer)
            assert decoded["scope"] == "mcp"
        print("ok", issuer.issuer, "jwks fetches", issuer.jwks_fetches, "discovery", issuer.discovery_fetches)
