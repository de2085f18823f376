"""TLS end to end: the client listener over HTTPS (`spec.listen.tls`), client certificates (mTLS) as
an identity, certificate rotation without a restart, and TLS towards https upstreams
(`spec.http.tls`), driven by real clients (httpx2, the official Python SDK, curl, Python's ssl).

Every test makes its own PKI files in a temporary directory with `cryptography`: a CA, a server
certificate for DNS:localhost and IP:127.0.0.1, client certificates (one per identity, one from
another CA, one expired), and starts its own gateway(s) on free ports in front of the stdio demo
server.

1. HTTPS with the CA: a stateless tools/call (raw HTTP), a session-era SDK client; no CA -> the
   client refuses the certificate; plain HTTP on the TLS port gets no MCP answer.
2. HTTP/2 by ALPN (curl --http2, and Python's ssl): h2 by default, http/1.1 with `http2: false`.
3. TLS 1.0/1.1 refused by the server (protocol_version alert); 1.2 and 1.3 accepted.
4. mTLS, optional: a verified client certificate is a machine identity (subject = CN) on an endpoint
   with `auth: {mode: required}`; no certificate -> 401; an endpoint with scopes -> 403
   insufficient_scope; certificates from another CA or expired are no identity.
5. mTLS, required: a handshake without a client certificate fails.
6. Rotation: a new certificate on disk is served to new connections within ~5 s; a broken file
   (garbage, or a certificate that does not match the key) is refused and the old pair stays.
7. Upstream TLS: gateway A -> https gateway B -> demo server; with `tls.caFile` it works, without it
   the call fails with a JSON-RPC error naming the upstream; a client certificate towards an
   upstream that requires one.

Known failures against the current binary are written up in /work/notes/tls-failures.md.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import wire
from conftest import DEMO_BIN, GATEHOUSE_BIN, READY_TIMEOUT, Proc, _yaml, free_port, require_binary
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

SDK_TIMEOUT = 20
ROTATION_WAIT = 8.0  # the gateway polls the files every 5 s
RELOAD_REFUSED = "TLS certificate reload refused"


# --- a throw-away PKI --------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class Leaf:
    cert_path: Path
    key_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class CA:
    dir: Path
    name: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=_key)
    serials: Iterator[int] = field(default_factory=lambda: iter(range(1000, 10**6)))

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.subject = subject
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(hours=1)).not_valid_after(_now() + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = self.dir / f"{self.name.replace(' ', '-').lower()}.crt"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def leaf_cert(self, cn: str, key: ec.EllipticCurvePrivateKey, *, client: bool, serial: int | None = None,
                  expired: bool = False) -> x509.Certificate:
        if expired:
            not_before, not_after = _now() - datetime.timedelta(days=3), _now() - datetime.timedelta(days=1)
        else:
            not_before, not_after = _now() - datetime.timedelta(hours=1), _now() + datetime.timedelta(days=1)
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.subject).public_key(key.public_key())
            .serial_number(serial if serial is not None else next(self.serials))
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if not client:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, stem: str, cn: str, *, client: bool = False, serial: int | None = None, expired: bool = False,
              key: ec.EllipticCurvePrivateKey | None = None) -> Leaf:
        key = key or _key()
        cert = self.leaf_cert(cn, key, client=client, serial=serial, expired=expired)
        leaf = Leaf(cert_path=self.dir / f"{stem}.crt", key_path=self.dir / f"{stem}.key", cert=cert, key=key)
        leaf.cert_path.write_bytes(leaf.pem)
        leaf.key_path.write_bytes(_key_pem(key))
        return leaf


@dataclass
class PKI:
    ca: CA
    server: Leaf
    client: Leaf  # CN client-a, signed by the CA
    foreign_client: Leaf  # CN client-a, signed by another CA
    expired_client: Leaf  # CN client-a, signed by the CA, expired yesterday


@pytest.fixture
def pki(scratch_dir: Path) -> PKI:
    pki_dir = scratch_dir / "pki"
    ca = CA(pki_dir, "Gatehouse Test CA")
    other = CA(pki_dir / "other", "Some Other CA")
    return PKI(
        ca=ca,
        server=ca.issue("server", "localhost"),
        client=ca.issue("client-a", "client-a", client=True),
        foreign_client=other.issue("foreign-client", "client-a", client=True),
        expired_client=ca.issue("expired-client", "client-a", client=True, expired=True),
    )


def client_context(pki: PKI | None, cert: Leaf | None = None, *, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client context trusting the test CA (or the system's, with pki=None), optionally with a client certificate."""
    ctx = ssl.create_default_context(cafile=str(pki.ca.path)) if pki else ssl.create_default_context()
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


# --- gateways ----------------------------------------------------------------------------------------


def demo_spec(workdir: Path, request_seconds: float = 10) -> dict[str, Any]:
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    return {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"], "env": {}, "workingDirectory": str(workdir)},
            "timeouts": {"requestSeconds": request_seconds}}


@dataclass
class TLSGateway:
    name: str
    dir: Path
    port: int
    config_path: Path
    proc: Proc
    tls: bool
    ready_ctx: ssl.SSLContext | None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url(self, path: str = "/mcp", host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def describe(self) -> str:
        return f"{self.proc.describe()}\n--- {self.config_path} ---\n{self.config_path.read_text()}"

    def alive(self) -> None:
        assert self.proc.popen.poll() is None, f"the gateway {self.name} died\n{self.describe()}"

    def log(self) -> str:
        return self.proc.output(limit=1 << 22)


def gateway_yaml(port: int, *, name: str, tls: dict[str, Any] | None, servers: dict[str, dict[str, Any]],
                 endpoints: list[dict[str, Any]] | None = None, auth: dict[str, Any] | None = None,
                 policy: dict[str, Any] | None = None) -> str:
    listen: dict[str, Any] = {"bind": "127.0.0.1", "port": port}
    if tls is not None:
        listen["tls"] = tls
    spec: dict[str, Any] = {"listen": listen}
    if auth is not None:
        spec["auth"] = auth
    if policy is not None:
        spec["policy"] = policy
    if endpoints is None:
        spec["upstream"] = next(iter(servers))
    else:
        spec["endpoints"] = endpoints
    docs = [{"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": name}, "spec": spec}]
    for server_name, server_spec in servers.items():
        docs.append({"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": server_name},
                     "spec": server_spec})
    return "\n---\n".join(_yaml(doc) for doc in docs) + "\n"


def wait_ready(gw: TLSGateway, path: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    verify: ssl.SSLContext | bool = gw.ready_ctx if gw.ready_ctx is not None else True
    with httpx2.Client(timeout=2.0, trust_env=False, verify=verify) as http:
        while time.monotonic() < deadline:
            if gw.proc.popen.poll() is not None:
                break
            try:
                response = http.get(f"{gw.base_url}{path}")
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:300]}"
            except httpx2.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(0.1)
    why = (f"{gw.name} exited (code {gw.proc.popen.returncode})" if gw.proc.popen.poll() is not None
           else f"{gw.base_url}{path} did not answer 200 within {timeout:.0f}s (last: {last})")
    pytest.fail(f"{why}\n{gw.describe()}", pytrace=False)


def wait_upstream_ready(gw: TLSGateway, server: str, timeout: float = READY_TIMEOUT) -> None:
    """Until /readyz lists `server` as ready (the gateway as a whole may stay unready: another upstream is broken)."""
    deadline = time.monotonic() + timeout
    last: Any = "no answer"
    with httpx2.Client(timeout=2.0, trust_env=False, verify=gw.ready_ctx or True) as http:
        while time.monotonic() < deadline and gw.proc.popen.poll() is None:
            try:
                last = http.get(f"{gw.base_url}/readyz").json()
                if (last.get("servers") or {}).get(server) == "ready":
                    return
            except (httpx2.HTTPError, ValueError) as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(0.1)
    pytest.fail(f"upstream {server!r} of {gw.name} not ready within {timeout:.0f}s (last /readyz: {last})\n{gw.describe()}", pytrace=False)


@pytest.fixture
def gateways(scratch_dir: Path) -> Iterator[Callable[..., TLSGateway]]:
    started: list[TLSGateway] = []

    def start(name: str = "gw", *, tls: dict[str, Any] | None, servers: dict[str, dict[str, Any]] | None = None,
              endpoints: list[dict[str, Any]] | None = None, auth: dict[str, Any] | None = None,
              policy: dict[str, Any] | None = None, ready_ctx: ssl.SSLContext | None = None,
              ready_path: str = "/readyz", args: tuple[str, ...] = ()) -> TLSGateway:
        require_binary(GATEHOUSE_BIN, "gatehouse")
        work = scratch_dir / name
        work.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config_path = work / "gateway.yaml"
        config_path.write_text(gateway_yaml(port, name=name, tls=tls, servers=servers or {"demo": demo_spec(work)},
                                            endpoints=endpoints, auth=auth, policy=policy))
        proc = Proc(name, [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), *args], work)
        gw = TLSGateway(name=name, dir=work, port=port, config_path=config_path, proc=proc, tls=tls is not None,
                        ready_ctx=ready_ctx)
        started.append(gw)
        wait_ready(gw, ready_path)
        return gw

    yield start
    for gw in started:
        gw.proc.stop()


def tls_block(pki: PKI, **extra: Any) -> dict[str, Any]:
    return {"certificateFile": str(pki.server.cert_path), "keyFile": str(pki.server.key_path), **extra}


# --- clients -----------------------------------------------------------------------------------------


# What a refused TLS handshake looks like to httpx2 (a TLS 1.3 alert read after the handshake can
# surface as a bare ssl.SSLError).
HANDSHAKE_REFUSED = (httpx2.HTTPError, ssl.SSLError, OSError)


def https_client(ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(verify=ctx, trust_env=False, timeout=wire.DEFAULT_TIMEOUT, headers=headers)


async def echo(http: httpx2.AsyncClient, url: str, message: str, headers: dict[str, str] | None = None) -> wire.Reply:
    request = wire.modern_request("tools/call", {"name": "echo", "arguments": {"message": message}})
    with anyio.fail_after(SDK_TIMEOUT):
        return await wire.post(http, url, request, {**wire.modern_headers(request), **(headers or {})})


def assert_echoed(reply: wire.Reply, message: str, what: str) -> None:
    assert reply.status == 200, f"{what}: expected HTTP 200, got {reply.describe()}"
    result = reply.result
    assert not result.get("isError") and result["content"][0]["text"] == message, f"{what}: {reply.describe()}"


async def sdk_session_echo(url: str, ctx: ssl.SSLContext, message: str) -> str:
    async with httpx2.AsyncClient(verify=ctx, trust_env=False, timeout=httpx2.Timeout(30.0, read=60.0)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=SDK_TIMEOUT) as session:
                with anyio.fail_after(SDK_TIMEOUT):
                    await session.initialize()
                    result = await session.call_tool("echo", {"message": message})
    assert not result.is_error and result.content and result.content[0].type == "text", f"echo: {result!r}"
    return result.content[0].text


@dataclass
class Handshake:
    ok: bool
    version: str | None = None
    alpn: str | None = None
    serial: int | None = None
    error: str = ""
    http_status: int | None = None  # when a request was sent after the handshake


def handshake(port: int, ctx: ssl.SSLContext, *, host: str = "localhost", request_path: str | None = None) -> Handshake:
    """One TLS connection; with request_path, a GET over HTTP/1.1 too (for TLS 1.3, where a refused
    client certificate only shows after the handshake)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, ctx.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            result = Handshake(ok=True, version=tls.version(), alpn=tls.selected_alpn_protocol(),
                               serial=x509.load_der_x509_certificate(der).serial_number if der else None)
            if request_path is not None:
                tls.sendall(f"GET {request_path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
                if match:
                    result.http_status = int(match.group(1))
                else:
                    result.ok = False
                    result.error = f"no HTTP answer after the handshake: {data[:200]!r}"
            return result
    except (ssl.SSLError, OSError) as error:
        return Handshake(ok=False, error=f"{type(error).__name__}: {error}")


def served_serial(port: int, pki: PKI) -> int:
    result = handshake(port, client_context(pki))
    assert result.ok and result.serial is not None, f"TLS handshake with the gateway failed: {result.error}"
    return result.serial


# --- 1. HTTPS ------------------------------------------------------------------------------------------


async def test_stateless_and_session_calls_over_https(gateways: Callable[..., TLSGateway], pki: PKI) -> None:
    ctx = client_context(pki)
    gw = gateways(tls=tls_block(pki), ready_ctx=ctx)
    async with https_client(ctx) as http:
        for host in ("127.0.0.1", "localhost"):
            reply = await echo(http, gw.url(host=host), f"over https via {host}")
            assert_echoed(reply, f"over https via {host}", f"stateless tools/call at {gw.url(host=host)}")
    assert await sdk_session_echo(gw.url(), ctx, "sdk over https") == "sdk over https"

    # A client that does not trust the CA refuses the gateway's certificate.
    async with https_client(client_context(None)) as untrusting:
        with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await echo(untrusting, gw.url(), "untrusted")

    # Plain HTTP on the TLS port gets no MCP answer.
    request = wire.modern_request("tools/call", {"name": "echo", "arguments": {"message": "plaintext"}})
    body = json.dumps(request).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nContent-Type: application/json\r\n"
            f"Accept: {wire.ACCEPT}\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        answer = b""
        try:
            sock.sendall(head + body)
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    assert b"plaintext" not in answer and not answer.startswith(b"HTTP/1.1 200"), f"plain HTTP on the TLS port: {answer[:300]!r}"
    gw.alive()


# --- 2. HTTP/2 -----------------------------------------------------------------------------------------


@dataclass
class CurlReply:
    version: str
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> dict[str, Any]:
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise AssertionError(f"curl: not a JSON body: {self.describe()}") from error

    def describe(self) -> str:
        return f"HTTP/{self.version} {self.status} headers={self.headers} body={self.body[:1000]!r}"


def curl_post(url: str, pki: PKI, *, http2: bool, cert: Leaf | None = None, message: str = "via curl",
              headers: dict[str, str] | None = None) -> CurlReply:
    """One stateless echo call through curl (HTTP/2 by ALPN with http2=True, else HTTP/1.1)."""
    request = wire.modern_request("tools/call", {"name": "echo", "arguments": {"message": message}})
    argv = ["curl", "-sS", "--max-time", "15", "--cacert", str(pki.ca.path), "--http2" if http2 else "--http1.1",
            "-D", "-", "-H", "Content-Type: application/json", "-H", f"Accept: {wire.ACCEPT}"]
    for name, value in {**wire.modern_headers(request), **(headers or {})}.items():
        argv += ["-H", f"{name}: {value}"]
    if cert is not None:
        argv += ["--cert", str(cert.cert_path), "--key", str(cert.key_path)]
    argv += ["--data-binary", json.dumps(request), "-w", "\n%{http_version} %{http_code}", url]
    result = subprocess.run(argv, capture_output=True, timeout=20)
    if result.returncode != 0:
        raise CurlFailed(f"curl exited {result.returncode}: {result.stderr.decode(errors='replace').strip()}")
    text, _, trailer = result.stdout.decode(errors="replace").rpartition("\n")
    version, status = trailer.split()
    head, _, body = text.partition("\r\n\r\n")
    parsed = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return CurlReply(version=version, status=int(status), headers=parsed, body=body)


class CurlFailed(Exception):
    pass


def need_curl() -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (needed for an HTTP/2 client)")


def assert_curl_echoed(reply: CurlReply, message: str, what: str, version: str = "2") -> None:
    assert reply.version == version and reply.status == 200, f"{what}: expected HTTP/{version} 200, got {reply.describe()}"
    body = reply.json()
    assert body.get("result", {}).get("content", [{}])[0].get("text") == message, f"{what}: {reply.describe()}"


async def test_http2_negotiated_by_alpn(gateways: Callable[..., TLSGateway], pki: PKI) -> None:
    ctx = client_context(pki)
    h2 = gateways("h2", tls=tls_block(pki), ready_ctx=ctx)
    h1 = gateways("h1", tls=tls_block(pki, http2=False), ready_ctx=ctx)

    offered = handshake(h2.port, client_context(pki, alpn=["h2", "http/1.1"]))
    assert offered.ok and offered.alpn == "h2", f"default listener, client offers h2 + http/1.1: {offered}"
    only_h1 = handshake(h2.port, client_context(pki, alpn=["http/1.1"]))
    assert only_h1.ok and only_h1.alpn == "http/1.1", f"default listener, client offers http/1.1 only: {only_h1}"
    no_h2 = handshake(h1.port, client_context(pki, alpn=["h2", "http/1.1"]))
    assert no_h2.ok and no_h2.alpn in ("http/1.1", None), f"http2: false, client offers h2 + http/1.1: {no_h2}"

    if shutil.which("curl") is None:
        return  # the ALPN checks above stand in for curl
    assert_curl_echoed(curl_post(h2.url(), pki, http2=True), "via curl", "curl --http2 to the default listener")
    assert_curl_echoed(curl_post(h1.url(), pki, http2=True), "via curl", "curl --http2 to a listener with http2: false", version="1.1")
    assert_curl_echoed(curl_post(h2.url(), pki, http2=False), "via curl", "curl --http1.1 to the default listener", version="1.1")
    h2.alive()
    h1.alive()


# --- 3. TLS versions -------------------------------------------------------------------------------------


def versioned_context(pki: PKI, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers exactly `version` (old versions allowed on our side: the server must refuse)."""
    ctx = client_context(pki)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


async def test_tls_1_1_and_older_refused(gateways: Callable[..., TLSGateway], pki: PKI) -> None:
    gw = gateways(tls=tls_block(pki), ready_ctx=client_context(pki))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1]
    for version in old:
        result = handshake(gw.port, versioned_context(pki, version))
        assert not result.ok, f"a {version.name}-only client completed a handshake ({result.version})"
        # The server said no (protocol_version alert); not our own OpenSSL refusing to offer it.
        assert "NO_PROTOCOLS_AVAILABLE" not in result.error, f"the local OpenSSL cannot offer {version.name}: {result.error}"
        assert re.search(r"PROTOCOL_VERSION|protocol version|HANDSHAKE_FAILURE|handshake failure", result.error), (
            f"{version.name}: expected a protocol_version alert from the gateway, got {result.error}")
    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        result = handshake(gw.port, versioned_context(pki, version), request_path="/readyz")
        assert result.ok and result.version == name and result.http_status == 200, f"{name}-only client: {result}"
    gw.alive()


# --- 4. and 5. client certificates -----------------------------------------------------------------------

ALLOW_ALL = "package gatehouse\n\nimport rego.v1\n\ndefault decision := true\n"


def decision_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_mtls_gateway(gateways: Callable[..., TLSGateway], pki: PKI, audit: Path, *, http2: bool = True) -> TLSGateway:
    """Client certificates optional; /mcp requires auth (no scopes), /scoped requires scope mcp, /open is off.
    Every decision (allow all) goes to `audit`, with the identity the policy saw."""
    return gateways(
        tls=tls_block(pki, clientCAFile=str(pki.ca.path), clientCertificates="optional", http2=http2),
        auth={"apiKeys": False},
        endpoints=[
            {"path": "/mcp", "servers": ["demo"], "auth": {"mode": "required"}},
            {"path": "/scoped", "servers": ["demo"], "auth": {"mode": "required", "scopes": ["mcp"]}},
            {"path": "/open", "servers": ["demo"], "auth": {"mode": "off"}},
        ],
        policy={"rego": {"inline": ALLOW_ALL}, "audit": {"sink": "file", "path": str(audit)}},
        ready_ctx=client_context(pki),
    )


async def assert_machine_identity(audit: Path) -> None:
    """The decisions for echo calls on /mcp: a machine identity named after the certificate's CN."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in decision_lines(audit) if line.get("target") == "echo" and line.get("endpoint") == "/mcp"]
        if lines or time.monotonic() > deadline:
            break
        await anyio.sleep(0.1)
    assert lines, f"no decision for the echo call on /mcp in {audit}: {decision_lines(audit)}"
    for line in lines:
        identity = line.get("identity") or {}
        assert identity.get("kind") == "machine" and identity.get("subject") == "client-a", (
            f"identity of a certificate-only caller: expected kind machine, subject client-a, got {identity}")


def assert_insufficient_scope(status: int, headers: dict[str, str] | httpx2.Headers, body: dict[str, Any], what: str) -> None:
    assert status == 403, f"{what}: expected 403, got {status} {dict(headers)} {body}"
    error = body.get("error") or {}
    assert error.get("code") == wire.INVALID_REQUEST and body.get("id") is None, f"{what}: {body}"
    challenge = headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge, f"{what}: WWW-Authenticate {challenge!r}"


async def test_client_certificate_is_an_identity_over_http2(gateways: Callable[..., TLSGateway], pki: PKI, scratch_dir: Path) -> None:
    need_curl()
    audit = scratch_dir / "decisions.jsonl"
    gw = start_mtls_gateway(gateways, pki, audit)
    reply = curl_post(gw.url("/mcp"), pki, http2=True, cert=pki.client, message="cert only, h2")
    assert_curl_echoed(reply, "cert only, h2", "HTTP/2, a client certificate and no Authorization header on /mcp (auth required)")
    await assert_machine_identity(audit)
    scoped = curl_post(gw.url("/scoped"), pki, http2=True, cert=pki.client)
    assert_insufficient_scope(scoped.status, scoped.headers, scoped.json(), "HTTP/2, a client certificate on /scoped (scope mcp)")
    gw.alive()


@pytest.mark.parametrize("http2", [True, False], ids=["listener-h2-and-h1", "listener-http2-false"])
async def test_client_certificate_is_an_identity_over_http1(gateways: Callable[..., TLSGateway], pki: PKI, scratch_dir: Path,
                                                            http2: bool) -> None:
    audit = scratch_dir / "decisions.jsonl"
    gw = start_mtls_gateway(gateways, pki, audit, http2=http2)
    with_cert = client_context(pki, pki.client)
    async with https_client(with_cert) as http:
        reply = await echo(http, gw.url("/mcp"), "cert only, h1")
        assert reply.headers.get("x-request-id"), reply.describe()
        assert_echoed(reply, "cert only, h1", "HTTP/1.1, a client certificate and no Authorization header on /mcp (auth required)")
        await assert_machine_identity(audit)
        scoped = await echo(http, gw.url("/scoped"), "needs a scope")
        assert_insufficient_scope(scoped.status, scoped.headers, scoped.response, "HTTP/1.1, a client certificate on /scoped (scope mcp)")
    # The official SDK (HTTP/1.1 through httpx2), session era, with only a client certificate.
    assert await sdk_session_echo(gw.url("/mcp"), with_cert, "sdk with a client certificate") == "sdk with a client certificate"
    gw.alive()


async def test_client_certificate_refusals(gateways: Callable[..., TLSGateway], pki: PKI, scratch_dir: Path) -> None:
    gw = start_mtls_gateway(gateways, pki, scratch_dir / "decisions.jsonl")
    # No certificate (it is optional): 401 on the required endpoint, served on the open one.
    async with https_client(client_context(pki)) as http:
        refused = await echo(http, gw.url("/mcp"), "no cert")
        assert refused.status == 401, f"no certificate, no token on /mcp: expected 401, got {refused.describe()}"
        assert refused.error["code"] == wire.INVALID_REQUEST and refused.response.get("id") is None, refused.describe()
        assert refused.headers.get("www-authenticate", "").startswith("Bearer "), refused.describe()
        assert_echoed(await echo(http, gw.url("/open"), "open"), "open", "no certificate on /open (auth off)")
    if shutil.which("curl"):
        refused_h2 = curl_post(gw.url("/mcp"), pki, http2=True)
        assert refused_h2.status == 401 and refused_h2.json().get("error"), f"HTTP/2, no certificate on /mcp: {refused_h2.describe()}"

    # Certificates that do not verify are no identity: the handshake fails, or the request gets 401.
    for what, leaf in (("a certificate from another CA", pki.foreign_client), ("an expired certificate", pki.expired_client)):
        async with https_client(client_context(pki, leaf)) as http:
            try:
                reply = await echo(http, gw.url("/mcp"), what)
            except HANDSHAKE_REFUSED:
                pass  # refused in the handshake (TLS 1.3: the alert surfaces on the first read)
            else:
                assert reply.status == 401, f"{what} (HTTP/1.1): expected the handshake to fail or 401, got {reply.describe()}"
        if shutil.which("curl"):
            try:
                answer = curl_post(gw.url("/mcp"), pki, http2=True, cert=leaf)
            except CurlFailed:
                pass
            else:
                assert answer.status == 401, f"{what} (HTTP/2): expected the handshake to fail or 401, got {answer.describe()}"
    gw.alive()


async def test_required_client_certificates(gateways: Callable[..., TLSGateway], pki: PKI) -> None:
    with_cert = client_context(pki, pki.client)
    gw = gateways(
        tls=tls_block(pki, clientCAFile=str(pki.ca.path), clientCertificates="required"),
        auth={"apiKeys": False},
        endpoints=[{"path": "/mcp", "servers": ["demo"], "auth": {"mode": "required"}}],
        ready_ctx=with_cert,
    )
    # TLS 1.2: the handshake itself fails. TLS 1.3: the server's alert arrives with the first read.
    tls12 = versioned_context(pki, ssl.TLSVersion.TLSv1_2)
    result = handshake(gw.port, tls12, request_path="/readyz")
    assert not result.ok, f"TLS 1.2 without a client certificate: {result}"
    result = handshake(gw.port, client_context(pki), request_path="/readyz")
    assert not result.ok, f"TLS 1.3 without a client certificate got an HTTP answer: {result}"
    async with https_client(client_context(pki)) as http:
        with pytest.raises(HANDSHAKE_REFUSED):
            reply = await echo(http, gw.url(), "no certificate")
            pytest.fail(f"a request without a client certificate was answered: {reply.describe()}")
    for what, leaf in (("another CA", pki.foreign_client), ("expired", pki.expired_client)):
        result = handshake(gw.port, client_context(pki, leaf), request_path="/readyz")
        assert not result.ok, f"client certificate ({what}) was accepted: {result}"

    if shutil.which("curl"):
        assert_curl_echoed(curl_post(gw.url(), pki, http2=True, cert=pki.client), "via curl", "required mode, HTTP/2, with a certificate")
        with pytest.raises(CurlFailed):
            reply = curl_post(gw.url(), pki, http2=True)
            pytest.fail(f"required mode, HTTP/2, no certificate: answered {reply.describe()}")
    async with https_client(with_cert) as http:
        assert_echoed(await echo(http, gw.url(), "with a certificate"), "with a certificate", "required mode, HTTP/1.1, with a certificate")
    gw.alive()


# --- 6. rotation -----------------------------------------------------------------------------------------


def wait_for_serial(gw: TLSGateway, pki: PKI, serial: int, timeout: float = ROTATION_WAIT) -> list[int]:
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = served_serial(gw.port, pki)
        if not seen or seen[-1] != current:
            seen.append(current)
        if current == serial:
            return seen
        time.sleep(0.25)
    return seen


def wait_for_log(gw: TLSGateway, text: str, count: int = 1, timeout: float = ROTATION_WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.log().count(text) >= count:
            return True
        time.sleep(0.2)
    return False


async def test_certificate_rotation(gateways: Callable[..., TLSGateway], pki: PKI) -> None:
    ctx = client_context(pki)
    gw = gateways(tls=tls_block(pki), ready_ctx=ctx)
    first = pki.server.serial
    assert served_serial(gw.port, pki) == first

    # A new certificate for the same key, with another serial: new connections get it without a restart.
    renewed = pki.ca.leaf_cert("localhost", pki.server.key, client=False)
    assert renewed.serial_number != first
    write_atomically(pki.server.cert_path, renewed.public_bytes(serialization.Encoding.PEM))
    seen = wait_for_serial(gw, pki, renewed.serial_number)
    assert seen[-1] == renewed.serial_number, (
        f"the served certificate's serial did not change to {renewed.serial_number} within {ROTATION_WAIT:.0f}s: "
        f"saw {seen}\n{gw.describe()}")
    async with https_client(client_context(pki)) as http:
        assert_echoed(await echo(http, gw.url(), "after rotation"), "after rotation", "tools/call after rotation")

    # Garbage in the certificate file: refused and logged; the renewed certificate stays.
    refusals = gw.log().count(RELOAD_REFUSED)
    write_atomically(pki.server.cert_path, b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    assert wait_for_log(gw, RELOAD_REFUSED, refusals + 1), f"no {RELOAD_REFUSED!r} within {ROTATION_WAIT:.0f}s\n{gw.describe()}"
    gw.alive()
    assert served_serial(gw.port, pki) == renewed.serial_number, "after a garbage certificate file"
    async with https_client(client_context(pki)) as http:
        assert_echoed(await echo(http, gw.url(), "after garbage"), "after garbage", "tools/call after a garbage certificate file")
    assert await sdk_session_echo(gw.url(), ctx, "sdk after garbage") == "sdk after garbage"
    gw.alive()


async def test_certificate_not_matching_the_key_is_refused(gateways: Callable[..., TLSGateway], pki: PKI) -> None:
    """A renewal that writes the certificate before the key: for a moment the files do not match.
    That pair is a broken pair: refused, the old one stays; once the key follows, the new pair is served."""
    gw = gateways(tls=tls_block(pki), ready_ctx=client_context(pki))
    first = pki.server.serial
    new_key = _key()
    renewed = pki.ca.leaf_cert("localhost", new_key, client=False)
    refusals = gw.log().count(RELOAD_REFUSED)
    write_atomically(pki.server.cert_path, renewed.public_bytes(serialization.Encoding.PEM))
    refused = wait_for_log(gw, RELOAD_REFUSED, refusals + 1)
    result = handshake(gw.port, client_context(pki), request_path="/readyz")
    gw.alive()
    assert result.ok and result.http_status == 200, (
        f"a certificate that does not match the key on disk: new TLS connections must keep working with the old pair, "
        f"got {result}\n{gw.describe()}")
    assert result.serial == first, f"served serial {result.serial}, expected the old {first} (the new certificate has no matching key)"
    assert refused, f"no {RELOAD_REFUSED!r} for a certificate that does not match the key\n{gw.describe()}"

    write_atomically(pki.server.key_path, _key_pem(new_key))
    seen = wait_for_serial(gw, pki, renewed.serial_number)
    assert seen[-1] == renewed.serial_number, f"after the key followed: saw serials {seen}\n{gw.describe()}"
    async with https_client(client_context(pki)) as http:
        assert_echoed(await echo(http, gw.url(), "new pair"), "new pair", "tools/call with the new pair")


# --- 7. TLS towards upstreams ------------------------------------------------------------------------------


async def test_https_upstream_needs_its_ca(gateways: Callable[..., TLSGateway], pki: PKI, scratch_dir: Path) -> None:
    inner = gateways("inner", tls=tls_block(pki), ready_ctx=client_context(pki))
    upstream_url = inner.url("/mcp")
    outer = gateways(
        "outer", tls=None, ready_path="/healthz",
        servers={
            "secure": {"http": {"url": upstream_url, "tls": {"caFile": str(pki.ca.path)}}, "timeouts": {"requestSeconds": 10}},
            "untrusted": {"http": {"url": upstream_url}, "timeouts": {"requestSeconds": 10}},
        },
        endpoints=[{"path": "/mcp", "servers": ["secure"]}, {"path": "/untrusted", "servers": ["untrusted"]}],
    )
    wait_upstream_ready(outer, "secure")
    async with wire.client() as http:
        assert_echoed(await echo(http, outer.url("/mcp"), "through two gateways"), "through two gateways",
                      "outer -> https inner with tls.caFile")
        for _ in range(2):
            started = time.monotonic()
            reply = await echo(http, outer.url("/untrusted"), "not trusted")
            elapsed = time.monotonic() - started
            assert "error" in reply.response, f"an https upstream whose CA is not configured answered: {reply.describe()}"
            message = reply.error["message"]
            assert "untrusted" in message, f"the error should name the upstream 'untrusted': {reply.describe()}"
            assert elapsed < 10, f"the refusal took {elapsed:.1f}s"
        # The trusted one still works.
        assert_echoed(await echo(http, outer.url("/mcp"), "still fine"), "still fine", "outer -> inner after the failures")
    assert await sdk_session_echo(outer.url("/mcp"), ssl.create_default_context(), "sdk through two gateways") == "sdk through two gateways"
    outer.alive()
    inner.alive()


async def test_client_certificate_towards_an_upstream(gateways: Callable[..., TLSGateway], pki: PKI) -> None:
    gateway_cert = pki.ca.issue("gateway-client", "outer-gateway", client=True)
    inner = gateways(
        "inner", tls=tls_block(pki, clientCAFile=str(pki.ca.path), clientCertificates="required"),
        auth={"apiKeys": False}, endpoints=[{"path": "/mcp", "servers": ["demo"], "auth": {"mode": "required"}}],
        ready_ctx=client_context(pki, pki.client),
    )
    upstream_url = inner.url("/mcp")
    outer = gateways(
        "outer", tls=None, ready_path="/healthz",
        servers={
            "with-cert": {"http": {"url": upstream_url, "tls": {"caFile": str(pki.ca.path), "certificateFile": str(gateway_cert.cert_path),
                                                                 "keyFile": str(gateway_cert.key_path)}},
                          "timeouts": {"requestSeconds": 10}},
            "no-cert": {"http": {"url": upstream_url, "tls": {"caFile": str(pki.ca.path)}}, "timeouts": {"requestSeconds": 10}},
        },
        endpoints=[{"path": "/mcp", "servers": ["with-cert"]}, {"path": "/nocert", "servers": ["no-cert"]}],
    )
    wait_upstream_ready(outer, "with-cert")
    async with wire.client() as http:
        assert_echoed(await echo(http, outer.url("/mcp"), "mutual TLS upstream"), "mutual TLS upstream",
                      "outer (client certificate) -> inner (requires one)")
        reply = await echo(http, outer.url("/nocert"), "no certificate")
        assert "error" in reply.response, f"an upstream requiring a client certificate answered without one: {reply.describe()}"
        assert "no-cert" in reply.error["message"], f"the error should name the upstream 'no-cert': {reply.describe()}"
    outer.alive()
    inner.alive()
