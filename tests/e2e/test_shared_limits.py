"""Rate limits shared by gateway replicas through PostgreSQL (`spec.rateLimits[].shared`,
`leaseTokens`; /work/notes/ops2-spec.md section 4), end to end.

Two replicas A and B listen on their own ports and share one throw-away PostgreSQL (pg.py,
`spec.storage.postgres.url` from GATEHOUSE_PG_URL) and one upstream (member_upstream.py, tools
`echo` and `whoami`). Auth is off: every caller is the anonymous identity (`Identity.anonymous`,
one and the same on every replica), so a limit keyed on [identity] has one bucket for all of
these calls. Each test names its limits afresh, so buckets left in PostgreSQL by another test
never count.

1. shared, leaseTokens 1 (exact): burst 10, 0.01/s; 30 concurrent calls alternating A and B ->
   exactly 10 answered, 20 refused with HTTP 429 + Retry-After + JSON-RPC -32029 naming the limit.
2. shared, leaseTokens 4: the same load -> between 1 and 10 + 2 x 3 answered (the documented
   overshoot bound), every other call refused the same way.
3. not shared, on the same replicas as a shared one: each replica admits its own burst (20 of
   30), while the shared limit admits 10 of 30 together.
4. PostgreSQL goes away: the replica falls back to a local bucket with the same settings, keeps
   answering (no 5xx, no internal errors) and counts gatehouse_rate_limit_fallback_total{limit}.
5. `gatehouse validate`: `shared: true` with SQLite storage is refused, naming postgres.

Skipped, with the reason, when PostgreSQL is not installed (scripts/test installs it as root).
Known failures against a binary are written up in /work/notes/balancing-failures.md.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import wire
from auth_e2e import gatehouse
from conftest import GATEHOUSE_BIN, HERE, Proc, _yaml, free_port, require_binary, wait_http_200
from pg import Postgres, require_postgres, start_postgres
from test_operations import Metrics, assert_echoed, assert_rate_limited, parse_metrics

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

MEMBER_UPSTREAM = HERE / "member_upstream.py"
SERVER = "demo"
PG_ENV = "GATEHOUSE_PG_URL"
TEST_BUDGET = 45
CALLS = 30
BURST = 10
RATE = 0.01  # one token per 100 s: nothing refills during a test


def limit_name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


# --- replicas ---------------------------------------------------------------------------------------


def replica_config(port: int, admin_port: int, upstream_url: str, rate_limits: list[dict[str, Any]], *,
                   storage: dict[str, Any] | None = None) -> str:
    spec: dict[str, Any] = {
        "listen": {"bind": "127.0.0.1", "port": port},
        "upstream": SERVER,
        "storage": storage or {"postgres": {"url": {"valueFrom": {"env": PG_ENV}}}},
        "admin": {"listen": {"bind": "127.0.0.1", "port": admin_port}},
        "rateLimits": rate_limits,  # a list of mappings: emitted as JSON flow, which is valid YAML
    }
    gateway = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "shared-limits-e2e"}, "spec": spec}
    server = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": SERVER},
              "spec": {"http": {"url": upstream_url}, "timeouts": {"requestSeconds": 10}}}
    return _yaml(gateway) + "\n---\n" + _yaml(server) + "\n"


@dataclass
class Replica:
    name: str
    port: int
    admin_port: int
    config_path: Path
    proc: Proc

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def alive(self) -> None:
        assert self.proc.popen.poll() is None, f"replica {self.name} died\n{self.proc.describe()}"


@dataclass
class Pair:
    a: Replica
    b: Replica
    upstream: Proc
    pg: Postgres

    @property
    def both(self) -> tuple[Replica, Replica]:
        return self.a, self.b

    def describe(self) -> str:
        parts = []
        for replica in self.both:
            parts.append(replica.proc.describe())
            parts.append(f"--- {replica.config_path} ---\n{replica.config_path.read_text()}")
        parts.append(self.upstream.describe())
        return "\n".join(parts)

    def alive(self) -> None:
        for replica in self.both:
            replica.alive()


@pytest.fixture(scope="module")
def postgres(log_root: Path) -> Iterator[Postgres]:
    require_postgres()
    log_dir = log_root / "shared-limits"
    log_dir.mkdir(exist_ok=True)
    pg = start_postgres(log_dir)
    try:
        yield pg
    finally:
        pg.stop()


def start_upstream(log_dir: Path) -> tuple[Proc, str]:
    proc = Proc("upstream", [sys.executable, str(MEMBER_UPSTREAM), "--name", "U", "--host", "127.0.0.1", "--port", "0"], log_dir)
    match = proc.wait_for_line(r"listening on (http://\S+)")
    return proc, match.group(1)


def start_replica(log_dir: Path, name: str, pg_url: str, upstream_url: str, rate_limits: list[dict[str, Any]]) -> Replica:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    port, admin_port = free_port(), free_port()
    config_path = log_dir / f"{name}.yaml"
    config_path.write_text(replica_config(port, admin_port, upstream_url, rate_limits))
    proc = Proc(name, [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], log_dir, env={PG_ENV: pg_url})
    replica = Replica(name=name, port=port, admin_port=admin_port, config_path=config_path, proc=proc)
    context = f"--- {config_path} ---\n{config_path.read_text()}\n"
    try:
        wait_http_200(proc, f"{replica.mcp_url.removesuffix('/mcp')}/readyz", context=context)
        wait_http_200(proc, f"{replica.admin_url}/status", context=context)
    except BaseException:
        proc.stop()
        raise
    return replica


@pytest.fixture
def replicas(scratch_dir: Path) -> Iterator[Callable[..., Pair]]:
    """replicas(pg, rate_limits) -> two replicas on `pg` with the same limits, and their upstream."""
    procs: list[Proc] = []
    pairs: list[Pair] = []

    def start(pg: Postgres, rate_limits: list[dict[str, Any]]) -> Pair:
        upstream, url = start_upstream(scratch_dir)
        procs.append(upstream)
        made = []
        for name in ("replica-a", "replica-b"):  # A first: it creates the schema, then B on the same database
            replica = start_replica(scratch_dir, name, pg.url, url, rate_limits)
            procs.append(replica.proc)
            made.append(replica)
        pair = Pair(a=made[0], b=made[1], upstream=upstream, pg=pg)
        pairs.append(pair)
        return pair

    yield start
    for pair in pairs:
        print(pair.describe())  # shown by pytest only when the test failed
    for proc in reversed(procs):
        proc.stop()


# --- load -------------------------------------------------------------------------------------------


async def burst_of_calls(pair: Pair, tool: str, n: int = CALLS) -> dict[int, tuple[Replica, wire.Reply]]:
    """n calls released at the same instant, call i to replica A when i is even, B when odd."""
    replies: dict[int, tuple[Replica, wire.Reply]] = {}
    limits = httpx2.Limits(max_connections=2 * n, max_keepalive_connections=2 * n)
    async with httpx2.AsyncClient(timeout=wire.DEFAULT_TIMEOUT, trust_env=False, limits=limits) as http:
        go = anyio.Event()

        async def one(i: int) -> None:
            replica = pair.a if i % 2 == 0 else pair.b
            arguments = {"message": f"c-{i}"} if tool == "echo" else {}
            message = wire.modern_request("tools/call", {"name": tool, "arguments": arguments})
            await go.wait()
            started = time.monotonic()
            try:
                replies[i] = (replica, await wire.post(http, replica.mcp_url, message, wire.modern_headers(message)))
            except httpx2.HTTPError as error:
                unanswered[i] = f"call {i} to {replica.name}: {type(error).__name__} after {time.monotonic() - started:.1f}s"

        unanswered: dict[int, str] = {}
        async with anyio.create_task_group() as group:
            for i in range(n):
                group.start_soon(one, i)
            await anyio.sleep(0.1)
            go.set()
    if unanswered:
        answered = {i: r.status for i, (_, r) in sorted(replies.items())}
        raise AssertionError(
            f"{len(unanswered)} of {n} concurrent calls of {tool!r} got no answer (every call should be answered or refused at once):\n  "
            + "\n  ".join(unanswered[i] for i in sorted(unanswered))[:3000] + f"\nanswered (index: HTTP status): {answered}"
        )
    return replies


def split(replies: dict[int, tuple[Replica, wire.Reply]], limit: str, tool: str) -> tuple[list[int], list[int]]:
    """(answered, refused) call indexes; every reply must be one or the other, in the right shape."""
    ok = sorted(i for i, (_, r) in replies.items() if r.status == 200)
    refused = sorted(i for i, (_, r) in replies.items() if r.status == 429)
    others = {i: r.describe() for i, (_, r) in replies.items() if r.status not in (200, 429)}
    assert not others, f"every call should be answered (200) or refused by the limit (429), got: {others}"
    for i in ok:
        replica, reply = replies[i]
        if tool == "echo":
            assert_echoed(reply, f"c-{i}", f"call {i} on {replica.name}")
        else:
            assert "error" not in reply.response, f"call {i} on {replica.name}: {reply.describe()}"
    for i in refused:
        replica, reply = replies[i]
        assert_rate_limited(reply, limit, f"call {i} on {replica.name}")
    return ok, refused


def per_replica(indexes: list[int], replies: dict[int, tuple[Replica, wire.Reply]]) -> dict[str, int]:
    counts = {"replica-a": 0, "replica-b": 0}
    for i in indexes:
        counts[replies[i][0].name] += 1
    return counts


async def scrape(replica: Replica) -> Metrics:
    async with wire.client() as http:
        response = await http.get(f"{replica.admin_url}/metrics")
    assert response.status_code == 200, f"GET /metrics on {replica.name}'s admin port -> HTTP {response.status_code}"
    return parse_metrics(response.text)


def shared_limit(name: str, *, lease: int | None = None, tools: list[str] | None = None) -> dict[str, Any]:
    limit: dict[str, Any] = {"name": name, "key": ["identity"], "requestsPerSecond": RATE, "burst": BURST, "shared": True}
    if lease is not None:
        limit["leaseTokens"] = lease
    if tools is not None:
        limit["tools"] = tools
    return limit


# --- 1. exact across replicas -----------------------------------------------------------------------


async def test_shared_limit_is_exact_across_replicas(postgres: Postgres, replicas: Callable[..., Pair]) -> None:
    limit = limit_name("shared")
    pair = replicas(postgres, [shared_limit(limit)])
    with anyio.fail_after(TEST_BUDGET):
        replies = await burst_of_calls(pair, "echo")
        ok, refused = split(replies, limit, "echo")
        assert (len(ok), len(refused)) == (BURST, CALLS - BURST), (
            f"{CALLS} concurrent calls over two replicas sharing a bucket of {BURST} (leaseTokens 1, exact): expected "
            f"{BURST} answered and {CALLS - BURST} refused, got {len(ok)} answered {per_replica(ok, replies)} "
            f"and {len(refused)} refused {per_replica(refused, replies)}"
        )
        rate_limited = [(await scrape(r)).value("gatehouse_rate_limited_total", limit=limit) or 0 for r in pair.both]
        assert sum(rate_limited) == CALLS - BURST, f"gatehouse_rate_limited_total{{limit={limit}}} on A, B: {rate_limited}"
    print(f"answered per replica: {per_replica(ok, replies)}")
    pair.alive()


# --- 2. leases --------------------------------------------------------------------------------------


async def test_shared_limit_with_leases_stays_within_the_overshoot_bound(postgres: Postgres, replicas: Callable[..., Pair]) -> None:
    """leaseTokens 4: a replica takes up to 4 tokens from PostgreSQL at once and spends them
    locally. The documented bound: R replicas together admit at most R x (L - 1) calls beyond
    what one shared bucket would, here 10 + 2 x 3 = 16. They may also admit fewer than 10:
    leased tokens unused for 1 s are dropped, never returned. At least one call is admitted,
    since the first lease finds a full bucket. Every other call is refused in the usual shape."""
    lease = 4
    replica_count = 2
    limit = limit_name("leased")
    pair = replicas(postgres, [shared_limit(limit, lease=lease)])
    with anyio.fail_after(TEST_BUDGET):
        replies = await burst_of_calls(pair, "echo")
        ok, refused = split(replies, limit, "echo")
    upper = BURST + replica_count * (lease - 1)
    assert 1 <= len(ok) <= upper, (
        f"{CALLS} concurrent calls over two replicas, burst {BURST}, leaseTokens {lease}: expected 1..{upper} answered, "
        f"got {len(ok)} {per_replica(ok, replies)}"
    )
    print(f"answered with leaseTokens {lease}: {len(ok)} {per_replica(ok, replies)}")
    pair.alive()


# --- 3. shared vs. per replica ----------------------------------------------------------------------


async def test_unshared_limit_is_per_replica_next_to_a_shared_one(postgres: Postgres, replicas: Callable[..., Pair]) -> None:
    shared = limit_name("shared")
    local = limit_name("local")
    pair = replicas(postgres, [
        shared_limit(shared, tools=["whoami"]),
        {"name": local, "key": ["identity"], "requestsPerSecond": RATE, "burst": BURST, "tools": ["echo"]},
    ])
    with anyio.fail_after(TEST_BUDGET):
        local_replies = await burst_of_calls(pair, "echo")
        local_ok, _ = split(local_replies, local, "echo")
        assert per_replica(local_ok, local_replies) == {"replica-a": BURST, "replica-b": BURST}, (
            f"a limit without `shared` is per replica: each of the two should admit its own burst of {BURST} "
            f"(15 calls each), got {per_replica(local_ok, local_replies)}"
        )
        shared_replies = await burst_of_calls(pair, "whoami")
        shared_ok, _ = split(shared_replies, shared, "whoami")
    assert len(shared_ok) == BURST, (
        f"the shared limit on the same replicas admits {BURST} in all, got {len(shared_ok)} {per_replica(shared_ok, shared_replies)}"
    )
    pair.alive()


# --- 4. PostgreSQL unreachable ----------------------------------------------------------------------


async def test_fallback_to_a_local_bucket_when_postgres_is_down(scratch_dir: Path, replicas: Callable[..., Pair]) -> None:
    """Its own PostgreSQL (the module's keeps serving the other tests), stopped mid-test."""
    require_postgres()
    pg = start_postgres(scratch_dir, name="postgres-fallback")
    burst = 3
    limit = limit_name("fallback")
    try:
        pair = replicas(pg, [{"name": limit, "key": ["identity"], "requestsPerSecond": RATE, "burst": burst, "shared": True}])
        with anyio.fail_after(TEST_BUDGET):
            async with wire.client() as http:
                first = await wire.modern_call(http, pair.a.mcp_url, "tools/call", {"name": "echo", "arguments": {"message": "with pg"}})
                assert_echoed(first, "with pg", "a call while PostgreSQL is up")
                pg.stop()
                # Concurrently, so a gateway that waits for PostgreSQL per call costs one wait, not five.
                replies: list[wire.Reply | None] = [None] * (burst + 2)
                problems: list[str] = []

                async def one(i: int) -> None:
                    started = time.monotonic()
                    try:
                        replies[i] = await wire.modern_call(http, pair.a.mcp_url, "tools/call",
                                                            {"name": "echo", "arguments": {"message": f"f-{i}"}})
                    except Exception as error:  # noqa: BLE001 (reported below)
                        problems.append(f"call {i}: {type(error).__name__}: {error} after {time.monotonic() - started:.1f}s")

                async with anyio.create_task_group() as group:
                    for i in range(burst + 2):
                        group.start_soon(one, i)
            assert not problems, f"with PostgreSQL down every call should still be answered: {problems}"
            replies = [r for r in replies if r is not None]
            answered = [i for i, r in enumerate(replies) if r.status == 200]
            others = [r.describe() for r in replies if r.status not in (200, 429)]
            assert not others, f"with PostgreSQL down the replica keeps serving (a local bucket), got: {others}"
            for i in answered:
                assert_echoed(replies[i], f"f-{i}", f"call {i} with PostgreSQL down")
            for i, reply in enumerate(replies):
                if reply.status == 429:
                    assert_rate_limited(reply, limit, f"call {i} with PostgreSQL down")
            assert 1 <= len(answered) <= burst, (
                f"with PostgreSQL down: a local bucket with the same settings (burst {burst}) admits 1..{burst} of "
                f"{len(replies)} calls, got {len(answered)}: {[r.status for r in replies]}"
            )
            metrics = await scrape(pair.a)
            fallbacks = metrics.total("gatehouse_rate_limit_fallback_total", limit=limit)
            assert fallbacks >= 1, f"gatehouse_rate_limit_fallback_total{{limit={limit}}}: {fallbacks}\n{metrics.dump('gatehouse_rate_limit')}"
        pair.alive()
    finally:
        pg.stop()


# --- 5. configuration -------------------------------------------------------------------------------


def test_validate_refuses_shared_limits_without_postgres(scratch_dir: Path) -> None:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    upstream = "http://127.0.0.1:9001/mcp"
    env = {PG_ENV: "postgres://gatehouse:secret@127.0.0.1:5432/gatehouse"}
    good = scratch_dir / "good.yaml"
    good.write_text(replica_config(free_port(), free_port(), upstream, [shared_limit("ok", lease=4)]))
    accepted = gatehouse("validate", str(good), env=env, check=False)
    assert accepted.returncode == 0, f"`gatehouse validate` refused a shared limit with postgres storage: {accepted.stdout}{accepted.stderr}"
    bad = scratch_dir / "bad.yaml"
    bad.write_text(replica_config(free_port(), free_port(), upstream, [shared_limit("needs-pg")],
                                  storage={"sqlite": {"path": str(scratch_dir / "gatehouse.db")}}))
    result = gatehouse("validate", str(bad), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"`gatehouse validate` accepted `shared: true` with SQLite storage: {output}"
    assert re.search(r"postgres", output, re.IGNORECASE), f"`gatehouse validate` should say shared limits need postgres: {output}"
    assert "needs-pg" in output or "shared" in output, f"`gatehouse validate` should name the limit or `shared`: {output}"
