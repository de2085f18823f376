"""A throw-away PostgreSQL server for the replica tests.

`start_postgres(log_dir)` runs `initdb` in a fresh temporary directory, starts `postgres`
on 127.0.0.1 and a free port (TCP only, fsync off), creates a database, and returns a
`Postgres` whose `.url` is `postgres://gatehouse:<password>@127.0.0.1:<port>/gatehouse_e2e`.
`.stop()` shuts it down fast and removes the data directory.

PostgreSQL refuses to run as root. As root the server (and initdb) run as the `postgres`
system user (created by the Debian package; created here with useradd if missing), via
`setpriv`, which execs (no intermediate process), so signals reach the postmaster itself.
The data directory is its own `mkdtemp` under /tmp owned by that user, since the
session's log directory is root-only (0700).

Binaries: `initdb`/`postgres` on PATH (this image links /usr/local/bin/{initdb,postgres,pg_ctl}
to /usr/lib/postgresql/15/bin), else the newest /usr/lib/postgresql/*/bin. Missing → skip with
the reason; scripts/test installs the Debian package `postgresql` when it runs as root.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Proc, free_port

RUN_AS = "postgres"
DATABASE = "gatehouse_e2e"
USER = "gatehouse"
READY_TIMEOUT = 30.0


def postgres_bindir() -> Path | None:
    """The directory holding initdb and postgres, or None."""
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


def postgres_missing() -> str | None:
    if postgres_bindir() is None:
        return "PostgreSQL not installed (no initdb/postgres on PATH or in /usr/lib/postgresql/*/bin): apt-get install -y postgresql (scripts/test does, as root)"
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        return "running as root without setpriv (util-linux): cannot drop privileges for postgres"
    return None


def require_postgres() -> None:
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)


def _service_user() -> pwd.struct_passwd | None:
    """The user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(RUN_AS)


def _as_service_user(argv: list[str], user: pwd.struct_passwd | None) -> list[str]:
    if user is None:
        return argv
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--", *argv]


@dataclass
class Postgres:
    port: int
    data_dir: Path
    proc: Proc
    password: str
    bindir: Path
    user: str = USER
    database: str = DATABASE
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"postgres://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run SQL with psql over TCP (password auth); returns stdout (unaligned, tuples only)."""
        result = subprocess.run(
            [str(self.bindir / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user,
             "-d", database or self.database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            env={**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise AssertionError(f"psql {sql!r} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def stop(self) -> None:
        popen = self.proc.popen
        if popen.poll() is None:
            popen.send_signal(signal.SIGINT)  # "fast" shutdown: ends client sessions, no waiting for them
            try:
                popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.proc.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_postgres(log_dir: Path, name: str = "postgres") -> Postgres:
    require_postgres()
    bindir = postgres_bindir()
    assert bindir is not None
    user = _service_user()
    data_dir = Path(tempfile.mkdtemp(prefix="gatehouse-pg-"))
    password = secrets.token_urlsafe(18)
    pwfile = data_dir / "pwfile"
    pgdata = data_dir / "data"
    pwfile.write_text(password + "\n")
    if user is not None:
        os.chown(data_dir, user.pw_uid, user.pw_gid)
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    pwfile.chmod(0o600)
    try:
        initdb = subprocess.run(
            _as_service_user(
                [str(bindir / "initdb"), "-D", str(pgdata), "-U", USER, f"--pwfile={pwfile}",
                 "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
                user,
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if initdb.returncode != 0:
            raise AssertionError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    pwfile.unlink()
    port = free_port()
    argv = _as_service_user(
        [str(bindir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
         "-k", str(data_dir),  # the Unix socket lives with the data, not in /var/run/postgresql
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200", "-c", "log_min_messages=warning", "-c", "log_connections=off"],
        user,
    )
    proc = Proc(name, argv, log_dir)
    pg = Postgres(port=port, data_dir=data_dir, proc=proc, password=password, bindir=bindir)
    try:
        _wait_ready(pg)
        pg.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
    except BaseException:
        pg.stop()
        raise
    return pg


def _wait_ready(pg: Postgres) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if pg.proc.popen.poll() is not None:
            break
        check = subprocess.run(
            [str(pg.bindir / "pg_isready"), "-h", pg.host, "-p", str(pg.port), "-t", "1"],
            capture_output=True,
            text=True,
        )
        if check.returncode == 0:
            return
        last = check.stdout.strip() or check.stderr.strip()
        time.sleep(0.1)
    raise AssertionError(f"PostgreSQL on port {pg.port} not ready within {READY_TIMEOUT:.0f}s ({last})\n{pg.proc.describe()}")


def postgres_server(log_dir: Path) -> Iterator[Postgres]:
    """Generator body for a fixture: `yield from postgres_server(dir)` starts and stops it."""
    pg = start_postgres(log_dir)
    try:
        yield pg
    finally:
        pg.stop()
