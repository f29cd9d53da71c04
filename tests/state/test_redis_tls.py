"""Shared state over TLS (`rediss://`): a real redis-server listening with TLS, certificates made
by `openssl` for the test. Both of the store's connections (redis-py's client, and the clean
path's pipelined connection) must verify the server as the URL's TLS options say, and a server
the configured authority did not sign must count as Redis being down (fail open), never as a
client error."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as redis_client
from choosers import Only

from services import RedisServer, free_port, missing_service
from turnout.config.router import Deployment, RouterConfig
from turnout.config.state import StateConfig
from turnout.health.ejection import Admission
from turnout.health.rules import HealthPolicy, Outcome
from turnout.redisio.link import connect
from turnout.redisio.pipe import Pipe, Script
from turnout.secrets import Secret
from turnout.state.redis import RedisStore
from turnout.testing import ManualClock

pytestmark = pytest.mark.services


@dataclass
class TlsRedis:
    server: RedisServer
    tls_port: int
    authority: Path
    stranger: Path  # a certificate that signed nothing of the server's

    def url(self, authority: Path) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0?ssl_ca_certs={authority}"


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    for binary in ("redis-server", "openssl"):
        if shutil.which(binary) is None:
            missing_service(f"{binary} is not installed")
    directory = tmp_path_factory.mktemp("redis-tls")
    cert, key = _certificate(directory, "server")
    stranger, _ = _certificate(directory, "stranger")
    tls_port = free_port()
    server = RedisServer(
        directory,
        *("--tls-port", str(tls_port), "--tls-cert-file", str(cert)),
        *("--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)),
        *("--tls-auth-clients", "no"),
    )
    server.start()  # the plain port answers the readiness probe; the store uses the TLS one
    yield TlsRedis(server, tls_port, cert, stranger)
    server.stop()


def _policy() -> HealthPolicy:
    deployment = Deployment(model_name="chat", model="m", id="a")
    return HealthPolicy.for_deployment(deployment, RouterConfig(model_list=(deployment,)))


async def test_state_is_shared_over_tls(tls_redis: TlsRedis) -> None:
    config = StateConfig(
        backend="redis", url=tls_redis.url(tls_redis.authority), prefix="tls", timeout_ms=2000
    )
    store = RedisStore(config, clock=ManualClock(), groups={"a": "chat"})
    policy = _policy()
    for _ in range(3):  # through both connections: the clock sync, then the pipelined scripts
        chosen, admission, _ = await store.begin(("a",), Only("a"), {"a": policy}, 1.0, 1.0)
        assert (chosen, admission) == ("a", Admission.NORMAL)
        await store.finish("a", Outcome(None, 0.05, tokens=7), policy, 1.1, 1.1)
    assert store.shared and store.round_trips >= 6
    await store.aclose()
    async with redis_client.from_url(tls_redis.server.url) as plain:
        record = await plain.hgetall("tls:{chat}:r:a")
    assert record[b"s"] == b"3" and record[b"tu"] == b"21"


async def test_a_server_the_authority_did_not_sign_is_redis_down(
    tls_redis: TlsRedis, caplog: pytest.LogCaptureFixture
) -> None:
    config = StateConfig(
        backend="redis",
        url=tls_redis.url(tls_redis.stranger),
        prefix="tls-stranger",
        timeout_ms=2000,
        password=Secret("tls-secret-pass"),
    )
    store = RedisStore(config, clock=ManualClock(), groups={"a": "chat"})
    policy = _policy()
    chosen, admission, _ = await store.begin(("a",), Only("a"), {"a": policy}, 1.0, 1.0)
    assert (chosen, admission) == ("a", Admission.NORMAL)  # served on local state
    assert not store.shared
    assert "tls-secret-pass" not in caplog.text
    await store.aclose()
    # The clean path's own connection refuses the server too (not only redis-py's client).
    client, endpoint = connect(config, 2.0, 2.0)
    assert endpoint is not None and endpoint.tls is not None
    pipe = Pipe(endpoint, 2.0, 2.0)
    with pytest.raises(ssl.SSLCertVerificationError):
        await pipe.run(Script("return 1"), [], [])
    await pipe.aclose()
    await client.aclose()
