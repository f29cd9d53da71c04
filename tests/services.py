"""Services that must not be silently skipped.

Tests that need an external service (Redis, PostgreSQL) are marked ``services`` and get it from
a fixture. When the service cannot be had, the test skips on a developer's machine but fails
when ``TURNOUT_REQUIRE_SERVICES=1`` (as `.ci/run` sets), so CI never passes by skipping.

Redis comes in the three shapes the state store speaks to: one `redis-server`
(`redis_server`), a Redis Cluster of three masters (`redis_cluster`) and a master watched by a
Sentinel (`redis_sentinel`). All run on free loopback ports from the `redis-server` and
`redis-cli` binaries alone, once per session, and are killed at its end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest


def services_required() -> bool:
    return os.environ.get("TURNOUT_REQUIRE_SERVICES") == "1"


def missing_service(reason: str) -> None:
    """Skip, or fail when services are required, because a service is not available."""
    if services_required():
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


class RedisServer:
    """A private `redis-server` on a free loopback port, with nothing saved to disk."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.directory = directory
        self.args = args
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as probe,
            ):
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"FLUSHALL\r\n")
            conn.recv(16)

    def ask(self, *command: str) -> str:
        """One command's answer, as `redis-cli` prints it."""
        return _cli(self.port, *command)


def _cli(port: int, *command: str, timeout: float = 5) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout.strip()


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting until {what}")
        time.sleep(0.05)


class RedisCluster:
    """A Redis Cluster of `masters` private `redis-server` processes (no replicas), joined by
    `redis-cli --cluster create`. Each node's cluster bus has a free port of its own (not the
    default port + 10000, which may be taken or out of range)."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes: list[RedisServer] = []
        for index in range(masters):
            node_dir = directory / f"node{index}"
            node_dir.mkdir()
            self.nodes.append(
                RedisServer(
                    node_dir,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    str(_free_port()),
                    "--cluster-config-file",
                    str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout",
                    "2000",
                )
            )

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{hosts}"

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            done = subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{node.port}" for node in self.nodes),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-500:]}")
            _wait(self._ok, 20, "every node says cluster_state:ok")
        except BaseException:
            self.stop()
            raise

    def _ok(self) -> bool:
        for node in self.nodes:
            info = node.ask("CLUSTER", "INFO")
            if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                return False
            if f"cluster_known_nodes:{len(self.nodes)}" not in info:
                return False
        return True

    def flush(self) -> None:
        for node in self.nodes:
            node.flush()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinel:
    """A private master, `replicas` replicas of it, and one `redis-server --sentinel` watching
    it under `service` with quorum 1: the smallest Sentinel setup that fails over."""

    service = "turnout"

    def __init__(self, directory: Path, replicas: int = 0) -> None:
        self.directory = directory
        # Replicas sync at once, not after the default 5 s wait for more of them.
        self.master = RedisServer(_subdir(directory, "master"), "--repl-diskless-sync-delay", "0")
        self.replicas = [
            RedisServer(_subdir(directory, f"replica{index}")) for index in range(replicas)
        ]
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.master.start()
        for replica in self.replicas:
            replica.args = ("--replicaof", "127.0.0.1", str(self.master.port))
            replica.start()
        for replica in self.replicas:
            _wait(partial(_following, replica), 10, "the replica follows its master")
        # Started once the replicas follow: its first look at the master finds them.
        conf = self.directory / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.directory}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 5000\n"
        )
        self.process = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: self.master_port() == self.master.port, 10, "the Sentinel answers")
        _wait(
            lambda: self.watched().get("num-slaves") == str(len(self.replicas)),
            15,
            "the Sentinel knows the replicas",
        )

    def ask(self, *command: str) -> str:
        return _cli(self.port, *command)

    def watched(self) -> dict[str, str]:
        """What the Sentinel knows of the master (SENTINEL MASTER's fields)."""
        lines = self.ask("SENTINEL", "MASTER", self.service).splitlines()
        return dict(zip(lines[::2], lines[1::2], strict=False))

    def master_port(self) -> int | None:
        """The master's port as the Sentinel tells clients (None before it knows)."""
        answer = self.ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service).split()
        return int(answer[1]) if len(answer) == 2 and answer[1].isdigit() else None

    def fail_over(self) -> RedisServer:
        """Kill the master and have the Sentinel promote a replica now (not after its
        down-after delay); the new master, once the Sentinel hands it out."""
        self.master.stop()
        promoted = self.replicas[0]
        _wait(
            lambda: (
                self.master_port() == promoted.port
                or self.ask("SENTINEL", "FAILOVER", self.service) == "OK"
            ),
            10,
            "the Sentinel accepts the failover",
        )
        _wait(lambda: self.master_port() == promoted.port, 15, "the replica is promoted")
        _wait(lambda: "role:master" in promoted.ask("INFO", "replication"), 10, "it is master")
        return promoted

    def flush(self) -> None:
        self.master.flush()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None
        for server in (self.master, *self.replicas):
            server.stop()


def _following(replica: RedisServer) -> bool:
    return "master_link_status:up" in replica.ask("INFO", "replication")


def _subdir(directory: Path, name: str) -> Path:
    path = directory / name
    path.mkdir()
    return path


def free_port() -> int:
    """A loopback port free when asked (for a server the test starts itself)."""
    return _free_port()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for the session (skips, or fails under
    TURNOUT_REQUIRE_SERVICES=1, when the binary is missing)."""
    if shutil.which("redis-server") is None:
        missing_service("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server of the test's own, to stop and start again (DEBUG enabled, to
    make it slow on purpose)."""
    if shutil.which("redis-server") is None:
        missing_service("redis-server is not installed")
    server = RedisServer(tmp_path, "--enable-debug-command", "yes")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _need_redis_binaries() -> None:
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            missing_service(f"{binary} is not installed")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A private Redis Cluster of three masters for the session."""
    _need_redis_binaries()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    """A private master watched by one Sentinel (quorum 1) for the session."""
    _need_redis_binaries()
    sentinel = RedisSentinel(tmp_path_factory.mktemp("redis-sentinel"))
    sentinel.start()
    yield sentinel
    sentinel.stop()
