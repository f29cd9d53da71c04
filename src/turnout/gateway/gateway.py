"""One gateway process: its router, upstream transport, metrics, access rules, limits and config.

The composition root: one pooled HTTP transport shared by every provider across reloads,
owned by the router (closing the router closes it), and the providers built on it, with the
redactor of the whole configuration that the gateway applies again to every error it answers.

A reload applies every setting it can at once: the model list, the master key, /metrics access,
the body limit, the connection timeouts and cap (idle timeout: for connections opened after it)
and the log level. The listening address, the worker count, the shutdown timeout and the demo
switch need a restart; a reload that changes one says so in its log and in its answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from turnout.clock import Clock, SystemClock
from turnout.config.load import load_config
from turnout.config.router import Deployment
from turnout.config.server import GatewayConfig, with_command_line
from turnout.config.store import store_enabled
from turnout.errors import InvalidRequestError, UnauthorizedError
from turnout.gateway.access_log import AccessLineFormatter
from turnout.gateway.auth import (
    Authenticator,
    authenticator_for,
    bearer_token,
    metrics_authenticator,
)
from turnout.gateway.connections import ConnectionLimits
from turnout.gateway.enforcement import admit, build_ask
from turnout.gateway.ledger_choice import open_ledger
from turnout.gateway.spend_tracking import SpendTracker
from turnout.gateway.spend_writing import spend_writer_for
from turnout.gateway.store_link import StoreLink
from turnout.gateway.virtual_keys import Caller, VirtualKeys
from turnout.governance.ledger import Ledger, Ticket
from turnout.governance.spend_writer import SpendWriter
from turnout.observe.logs import LogObserver
from turnout.observe.metrics import GatewayMetrics
from turnout.observe.request_log import (
    ACCESS_LOGGER,
    REQUESTS_LOGGER,
    JsonLineFormatter,
    LogWriter,
    RequestLog,
)
from turnout.observe.request_record import RecordAssembler
from turnout.observe.series import Shared
from turnout.observe.tracing import start_tracing
from turnout.observe.traffic import TrafficObserver
from turnout.providers.credentials import secrets_in
from turnout.providers.registry import ProviderSet, provider_set
from turnout.router.router import Router
from turnout.upstream import Transport
from turnout.upstream.aiohttp import AiohttpTransport
from turnout.wire import Request

logger = logging.getLogger("turnout.gateway")

#: Server settings a running process cannot change.
RESTART_ONLY: Final = (
    "host",
    "port",
    "workers",
    "shutdown_timeout",
    "demo",
    "request_log",
    "access_log",
    "responses_store",
)


class Gateway:
    """Everything the HTTP application serves with. Build it inside the running event loop."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock | None = None,
        routing_detail: bool = False,
        shared_metrics: Shared | None = None,
    ) -> None:
        self.config = config
        #: OpenTelemetry, when the environment asks for it (None: off, and nothing of it loaded).
        self.tracing = start_tracing()
        self.transport: Transport = AiohttpTransport()
        if self.tracing is not None:
            self.transport = self.tracing.wrap(self.transport)
        #: With `shared_metrics` (one of several workers), every worker's series in one view.
        self.metrics = GatewayMetrics(shared_metrics)
        self._clock = clock
        #: The router's clock, for the gateway's own limits on a request (one deadline heap).
        self.clock: Clock = clock or SystemClock()
        self._logs = LogObserver(
            config.router.routing.strategy, routing_detail=routing_detail, names=self.name_of
        )
        self._names: tuple[tuple[Deployment, ...], dict[str, str]] = ((), {})
        #: Recent traffic per deployment, for the status page (`turnout.gateway.status`).
        self.traffic = TrafficObserver()
        built = _providers(config, self.transport, clock)
        #: Applied to every error as it leaves the gateway (the providers apply it first).
        self.redactor = built.redactor
        self.router = Router(
            config.router,
            built.providers,
            clock=self.clock,
            observers=[self.metrics, self._logs, self.traffic],
            transport=self.transport,
        )
        #: The router's bus, which the gateway's own events go through too; subscribe to it
        #: to observe everything (tracing, spend).
        self.bus = self.router.bus
        if self.tracing is not None:
            self.tracing.attach(self.bus, config.router.routing.strategy)
        self.metrics.state_source(self.router.state_status)
        self.auth: Authenticator = authenticator_for(config.server.master_key)
        self.metrics_auth: Authenticator = metrics_authenticator(config.server)
        #: The store of keys and spend (None: off, `turnout.config.store.store_enabled`); its
        #: settings are read at start only.
        self.store: StoreLink | None = None
        self.keys: VirtualKeys | None = None
        #: Budgets and rate limits of virtual keys, and the accounting of every routed
        #: request (None: the store is off).
        self.ledger: Ledger | None = None
        self.spend: SpendTracker | None = None
        if store_enabled(config.store, master_key_set=config.server.master_key is not None):
            self.store = StoreLink(config.store)
            self.keys = VirtualKeys(self.store, ttl=config.store.key_cache_ttl)
        #: Where the request path hands each request's spend log row (None: the store is off).
        self.spend_sink: SpendWriter | None = None
        if self.store is not None:
            self.spend_sink = spend_writer_for(config.store, self.store, self.metrics.spend_log)
            self._open_accounting(self.store, self.spend_sink)
        self.limits = ConnectionLimits.of(config.server)
        self.metrics.deployments(_described(config))
        self._open_logs(config)
        self.draining = False
        self.started_at = time.time()
        #: One reload at a time (SIGHUP and POST /admin/reload may overlap); later ones queue.
        self._reload_lock = asyncio.Lock()

    def name_of(self, deployment_id: str) -> str:
        """A deployment's readable name, from the running config (its id when unknown)."""
        current = self.router.deployments()
        if self._names[0] is not current:
            self._names = (current, {d.id: d.name for d in current})
        return self._names[1].get(deployment_id, deployment_id)

    def _open_logs(self, config: GatewayConfig) -> None:
        """The request log (an assembler of request records, logged) and the access log, both
        written by one thread (`LogWriter`, started with the gateway)."""
        server = config.server
        #: Whether the request log holds the requests' messages and answers.
        self.capture_content = server.request_log.enabled and server.request_log.capture_content
        #: Assembles each request's record from the bus (None: no request log); add a sink to
        #: receive the records too.
        self.records: RecordAssembler | None = None
        self.log_writer = LogWriter()
        if server.request_log.enabled:
            self.records = RecordAssembler(self.clock, [RequestLog()])
            self.bus.subscribe(self.records)
            destination = server.request_log.path or "stdout"
            self.log_writer.route(REQUESTS_LOGGER, destination, JsonLineFormatter())
        if server.access_log:
            self.log_writer.route(ACCESS_LOGGER, "stderr", AccessLineFormatter())

    async def start(self) -> None:
        """Start the log writer; open the store when it is on (a store that cannot be reached
        is retried in the background; the gateway serves the master key meanwhile)."""
        self.log_writer.start()
        if self.store is None:
            return
        if self.config.server.master_key is None:
            logger.warning(
                "the store is on but no master key is set: every caller is let in without a "
                "key, and the management API refuses every call until a master key is set"
            )
        await self.store.start()
        if self.spend_sink is not None:
            self.spend_sink.start()

    async def identify(self, headers: Mapping[str, str]) -> Caller:
        """Who is calling: the master key (or anyone, with no master key), else a virtual
        key looked up in the store."""
        try:
            return Caller(self.auth.authenticate(headers))
        except UnauthorizedError:
            presented = bearer_token(headers)
            if self.keys is None or presented is None or self.config.server.master_key is None:
                raise
            return await self.keys.authenticate(presented)

    def _open_accounting(self, store: StoreLink, sink: SpendWriter) -> None:
        """The ledger, and the tracker that settles each request and hands `sink` its row."""
        self.ledger = open_ledger(self.config, store)
        self.spend = SpendTracker(self.ledger, sink, self.router.deployments)
        self.bus.subscribe(self.spend)

    async def hold(self, caller: Caller, request: Request, group: str) -> Ticket | None:
        """Admit `request` against its key's budgets and limits (raising the refusal), and
        have it accounted when it ends. The ticket, when something was held."""
        if self.spend is None or self.ledger is None:
            return None
        ticket = None
        if caller.rules is not None:
            ask = build_ask(caller.rules, request, group, self.router)
            if ask is not None:
                ticket = await admit(self.ledger, ask)
        self.spend.track(request.request_id, caller.principal, group, ticket)
        return ticket

    async def _close_accounting(self) -> None:
        """Account the requests that ended, write their rows (queued rows before the store
        closes), close the ledger."""
        if self.spend is not None:
            await self.spend.aclose()
        if self.spend_sink is not None:
            await self.spend_sink.aclose()
        if self.ledger is not None:
            await self.ledger.aclose()

    async def reload(self) -> dict[str, Any]:
        """Read the config file again and swap the model list in without dropping requests.

        Reloads run one after another, each reading the file as it is when its turn comes, so
        the last one to finish applies the newest file.
        """
        async with self._reload_lock:
            return await self._reload()

    async def _reload(self) -> dict[str, Any]:
        source = self.config.source
        if source is None:
            raise InvalidRequestError("this gateway was not started from a config file")
        # Reading, parsing and validating a file takes milliseconds to (for a large file)
        # seconds of CPU: off the event loop, so that serving goes on meanwhile.
        config = await asyncio.to_thread(load_config, source)
        config = with_command_line(config, dict(self.config.command_line))
        built = _providers(config, self.transport, self._clock)
        await self.router.reload(config.router, built.providers)
        self.redactor = built.redactor
        self.auth = authenticator_for(config.server.master_key)
        self.metrics_auth = metrics_authenticator(config.server)
        self.limits = ConnectionLimits.of(config.server)
        self.metrics.deployments(_described(config))
        self.traffic.forget({d.id for d in config.router.model_list})
        changed = _changed_server_settings(self.config, config)
        restart = [name for name in changed if name in RESTART_ONLY]
        live = [name for name in changed if name not in RESTART_ONLY]
        if "log_level" in live:
            logging.getLogger().setLevel(config.server.log_level.upper())
        if restart:
            logger.warning(
                "reload: %s changed but take effect only on restart; the running values stay",
                ", ".join(f"server.{name}" for name in restart),
            )
            # Keep describing the process as it runs, so the next reload says it again.
            running = {name: getattr(self.config.server, name) for name in restart}
            config = msgspec.structs.replace(
                config, server=msgspec.structs.replace(config.server, **running)
            )
        if live:
            logger.info("reload: applied %s", ", ".join(f"server.{name}" for name in live))
        self.config = config
        if self.tracing is not None:
            self.tracing.spans.strategy = config.router.routing.strategy
        for skipped in config.skipped:
            logger.error("config: %s", skipped)
        for warning in config.warnings:
            logger.warning("config: %s", warning)
        logger.info(
            "reloaded %s: %d deployments in %d model groups",
            source,
            len(config.router.model_list),
            len({d.model_name for d in config.router.model_list}),
        )
        return {
            "status": "reloaded",
            "deployments": len(config.router.model_list),
            "warnings": list(config.warnings),
            **({"skipped": list(config.skipped)} if config.skipped else {}),
            "applied": [f"server.{name}" for name in live],
            # Present only when something waits for a restart, so that its presence says so.
            **({"restart_required": [f"server.{name}" for name in restart]} if restart else {}),
        }

    async def close(self) -> None:
        """Close the router (its providers and the transport, with every upstream connection)
        and the store, export the spans still buffered, and write the log lines still queued."""
        try:
            await self.router.aclose()
        finally:
            try:
                await self._close_accounting()
            finally:
                try:
                    if self.store is not None:
                        await self.store.aclose()
                finally:
                    try:
                        if self.tracing is not None:
                            # Flushes the spans still buffered: blocking, so off the loop.
                            await asyncio.to_thread(self.tracing.shutdown)
                    finally:
                        # In a thread: it waits for the writer to write what is queued.
                        await asyncio.to_thread(self.log_writer.stop)


def _providers(config: GatewayConfig, transport: Transport, clock: Clock | None) -> ProviderSet:
    """The providers and the redactor: every deployment's secrets and the gateway's own."""
    return provider_set(config.router, transport, clock, secrets=secrets_in(config.server))


def _described(config: GatewayConfig) -> list[tuple[str, str, str]]:
    return [(d.id, d.model_name, d.provider) for d in config.router.model_list]


def _changed_server_settings(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    return [
        name
        for name in type(new.server).__struct_fields__
        if getattr(old.server, name) != getattr(new.server, name)
    ]
