"""Running the gateway: listen, drain on SIGTERM, reload on SIGHUP, spread over workers.

With several workers each is its own process on the same port (SO_REUSEPORT): the kernel spreads
connections between them. Until shared state lands, each worker keeps its own health state
(cooldowns, breakers, averages): a deployment failing in one worker is not yet known to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from turnout.config.server import GatewayConfig
from turnout.errors import TurnoutError
from turnout.gateway.app import create_app
from turnout.gateway.gateway import Gateway
from turnout.gateway.site import GatewaySite

logger = logging.getLogger("turnout.gateway")


async def serve(
    config: GatewayConfig,
    *,
    reuse_port: bool = False,
    routing_detail: bool = False,
    on_ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`), then finish in-flight requests and exit."""
    server = config.server
    gateway = Gateway(config, routing_detail=routing_detail)
    runner = web.AppRunner(
        create_app(gateway), access_log=None, shutdown_timeout=server.shutdown_timeout
    )
    await runner.setup()
    site = GatewaySite(
        runner, server.host, server.port, lambda: gateway.limits, reuse_port=reuse_port
    )
    await site.start()
    port = _bound_port(runner) or server.port
    _settle_garbage_collector()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
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
        gateway.draining = True
        logger.info(
            "draining: no new connections; finishing requests in flight (up to %gs)",
            server.shutdown_timeout,
        )
        await runner.cleanup()
        await gateway.close()
        logger.info("stopped")


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
    workers = config.server.workers
    if workers == 1:
        _run_loop(config, reuse_port=False, routing_detail=routing_detail)
        return
    if config.server.port == 0:
        raise SystemExit("turnout: several workers need a fixed port, not 0")
    logger.warning(
        "starting %d workers on port %d; each worker keeps its own health state "
        "(cooldowns, circuit breakers, latency averages) until shared state in Redis lands",
        workers,
        config.server.port,
    )
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(config, routing_detail), name=f"turnout-worker-{n}")
        for n in range(workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, frame: object) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    import os

                    os.kill(process.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    codes = []
    for process in processes:
        process.join()
        codes.append(process.exitcode or 0)
    if any(codes):
        sys.exit(1)


def _worker(config: GatewayConfig, routing_detail: bool) -> None:
    configure_logging(config.server.log_level)
    _run_loop(config, reuse_port=True, routing_detail=routing_detail)


def _run_loop(config: GatewayConfig, *, reuse_port: bool, routing_detail: bool) -> None:
    main = serve(config, reuse_port=reuse_port, routing_detail=routing_detail)
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
