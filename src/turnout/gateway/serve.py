"""Running the gateway: listen, drain on SIGTERM, reload on SIGHUP, spread over workers.

With several workers each is its own process on the same port (SO_REUSEPORT): the kernel spreads
connections between them, so `/metrics` and `/health` are answered by whichever worker gets the
scrape. The parent makes a private directory for the run (removed at exit) where every worker
writes its metrics (`turnout.observe.multiprocess`) and, unless routing state is in a shared
store, a snapshot of its deployments' health (`turnout.gateway.worker_health`); any worker
answers for all of them. Routing state itself (cooldowns, breakers, limits, averages) is one
view across workers only with a shared state store; without one each worker routes on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.connection import wait

from aiohttp import web

from turnout.config.server import GatewayConfig
from turnout.errors import ConfigError, TurnoutError
from turnout.gateway.app import create_app
from turnout.gateway.gateway import Gateway
from turnout.gateway.responses_store_choice import check as check_responses_store
from turnout.gateway.site import GatewaySite
from turnout.gateway.status_peers import StatusPeers
from turnout.gateway.worker_health import WorkerHealth
from turnout.observe.multiprocess import WorkerFiles, forget_worker

logger = logging.getLogger("turnout.gateway")


async def serve(
    config: GatewayConfig,
    *,
    reuse_port: bool = False,
    routing_detail: bool = False,
    on_ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    workers_dir: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`), then finish in-flight requests and exit.

    `workers_dir`: the gateway's private directory when this is one of several workers
    (`WorkerDirectory`); its metrics and health then describe every worker.
    """
    server = config.server
    shared_state = shares_state(config)
    files = None
    if workers_dir is not None:
        files = WorkerFiles(os.path.join(workers_dir, "metrics"), shared_state=shared_state)
    gateway = Gateway(config, routing_detail=routing_detail, shared_metrics=files)
    await gateway.start()
    health = None
    if workers_dir is not None and not shared_state:
        health = WorkerHealth(os.path.join(workers_dir, "health"), gateway.router.health)
        gateway.bus.subscribe(health)
        await health.publish()  # seen by the other workers before this one answers anything
        health.start()
    peers = None
    if workers_dir is not None:
        # Traffic is counted where it is served, shared state or not: every worker publishes.
        peers = StatusPeers(os.path.join(workers_dir, "status"), gateway.traffic.export)
        peers.start()
    runner = web.AppRunner(
        create_app(gateway, health, peers, workers_dir),
        access_log=None,
        shutdown_timeout=server.shutdown_timeout,
    )
    await runner.setup()
    site = GatewaySite(
        runner,
        server.host,
        server.port,
        lambda: gateway.limits,
        reuse_port=reuse_port,
        access_log=server.access_log,
    )
    await site.start()
    port = _bound_port(runner) or server.port
    _settle_garbage_collector()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    orphaned = None if workers_dir is None else loop.create_task(_stop_when_orphaned(stop))
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        # The loop keeps only weak references to tasks: hold each reload until it is done.
        reloads: set[asyncio.Task[None]] = set()

        def reload_on_signal() -> None:
            task = loop.create_task(_reload(gateway))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload_on_signal)
    logger.info(
        "turnout listening on http://%s:%d (%d model groups, %d deployments, strategy %s)",
        server.host,
        port,
        len({d.model_name for d in config.router.model_list}),
        len(config.router.model_list),
        config.router.routing.strategy,
    )
    limits = gateway.limits
    logger.info(
        "limits: request headers within %gs, bodies within %gs plus 1s per %d bytes, idle "
        "connections closed after %gs, at most %d connections",
        limits.header_timeout,
        limits.body_timeout,
        limits.body_min_rate,
        limits.keepalive_timeout,
        limits.max_connections,
    )
    if on_ready is not None:
        on_ready(port)
    try:
        await stop.wait()
    finally:
        if orphaned is not None:
            orphaned.cancel()
        gateway.draining = True
        logger.info(
            "draining: no new connections; finishing requests in flight (up to %gs)",
            server.shutdown_timeout,
        )
        await runner.cleanup()
        if health is not None:
            await health.stop()
        if peers is not None:
            await peers.stop()
        await gateway.close()
        if files is not None:
            files.close()
        logger.info("stopped")


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """A worker whose parent is gone (killed outright) drains and exits: nothing would forward
    signals to it any more, nor remove the gateway's directory."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            break
    logger.warning("the gateway's parent process is gone: this worker stops")
    stop.set()


def _settle_garbage_collector() -> None:
    """Move start-up objects out of the collector's sight and collect young objects less often.

    Every request allocates a few dozen short-lived objects; with the default thresholds the
    cyclic collector runs every few requests and walks the long-lived start-up objects each time.
    Frozen start-up objects and a larger first generation keep it off the hot path.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


async def _reload(gateway: Gateway) -> None:
    try:
        await gateway.reload()
    except TurnoutError as error:
        logger.error("reload failed, keeping the running config: %s", error.message)


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None


def run(config: GatewayConfig, *, routing_detail: bool = False) -> None:
    """Run the gateway in this process, or in `workers` processes sharing the port."""
    try:
        check_responses_store(config)
    except ConfigError as error:
        raise SystemExit(f"turnout: {error.message}") from None
    workers = config.server.workers
    if workers == 1:
        _run_loop(config, reuse_port=False, routing_detail=routing_detail)
        return
    if config.server.port == 0:
        raise SystemExit("turnout: several workers need a fixed port, not 0")
    if shares_state(config):
        logger.info(
            "starting %d workers on port %d, sharing routing state", workers, config.server.port
        )
    else:
        logger.warning(
            "starting %d workers on port %d; /metrics and /health cover every worker, but each "
            "worker routes on its own health state (cooldowns, circuit breakers, limits, "
            "latency averages): configure a shared state store for one view",
            workers,
            config.server.port,
        )
    directory = WorkerDirectory()
    logger.info("workers share metrics and health through %s (removed at exit)", directory.root)
    try:
        _run_workers(config, routing_detail, directory)
    finally:
        directory.remove()


def _run_workers(config: GatewayConfig, routing_detail: bool, directory: WorkerDirectory) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker,
            args=(config, routing_detail, directory.root),
            name=f"turnout-worker-{n}",
        )
        for n in range(config.server.workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, frame: object) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    codes = []
    running: dict[object, multiprocessing.process.BaseProcess] = {
        process.sentinel: process for process in processes
    }
    while running:
        # As each worker exits (not in start order): its live gauges and health leave with it.
        for sentinel in wait([process.sentinel for process in running.values()]):
            exited = running.pop(sentinel)
            exited.join()
            codes.append(exited.exitcode or 0)
            if exited.pid is not None:
                directory.worker_exited(exited.pid)
    if any(codes):
        sys.exit(1)


class WorkerDirectory:
    """A gateway run's private directory (mode 0700): the workers' metric files under
    ``metrics/``, health snapshots under ``health/``, traffic for the status page under
    ``status/``, and the stored Responses API answers unless they are kept elsewhere
    (`turnout.gateway.responses_store_choice`). Removed when the gateway stops."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="turnout-workers-")
        os.mkdir(os.path.join(self.root, "metrics"))
        os.mkdir(os.path.join(self.root, "health"))
        os.mkdir(os.path.join(self.root, "status"))

    def worker_exited(self, pid: int) -> None:
        forget_worker(os.path.join(self.root, "metrics"), pid)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.root, "health", f"{pid}.json"))
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.root, "status", f"{pid}.msgpack"))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def shares_state(config: GatewayConfig) -> bool:
    """Whether routing state lives in a store every worker shares (its ``state.backend`` is not
    the in-process ``memory``): then each worker's health already is the gateway's one view."""
    return config.router.state.backend != "memory"


def _worker(config: GatewayConfig, routing_detail: bool, workers_dir: str) -> None:
    configure_logging(config.server.log_level)
    _run_loop(config, reuse_port=True, routing_detail=routing_detail, workers_dir=workers_dir)


def _run_loop(
    config: GatewayConfig, *, reuse_port: bool, routing_detail: bool, workers_dir: str | None = None
) -> None:
    main = serve(
        config, reuse_port=reuse_port, routing_detail=routing_detail, workers_dir=workers_dir
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed on Linux and macOS
        asyncio.run(main)
    else:
        uvloop.run(main)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
