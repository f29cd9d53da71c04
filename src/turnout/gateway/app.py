"""The OpenAI-compatible HTTP application: routes, errors, streams, headers.

Each handler parses, asks the router, and writes the answer; nothing else. Errors of every kind
leave through one middleware as OpenAI's error body with the status OpenAI would use. Answers
are written as the upstream's own bytes when no translation was needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import HttpVersion11, web

from turnout.errors import InvalidRequestError, TurnoutError
from turnout.gateway import framing
from turnout.gateway.admission import admitted, read_call, served_by
from turnout.gateway.advice import retry_headers
from turnout.gateway.body import check_declared_length
from turnout.gateway.exchange import Exchange, exchange_of
from turnout.gateway.gateway import Gateway
from turnout.gateway.ingress import ERROR_SHAPE, ErrorShape
from turnout.gateway.ledger_errors import LedgerRefusal
from turnout.gateway.management import add_management_routes
from turnout.gateway.messages_routes import MESSAGES_PATH, add_messages_routes
from turnout.gateway.model_routes import add_model_routes
from turnout.gateway.request_ids import REQUEST_ID_HEADER, TRACE_ID, id_headers
from turnout.gateway.requests import build_request, prompt_of
from turnout.gateway.responses_routes import RESPONSES_PATHS, add_responses_routes
from turnout.gateway.status import add_status_routes
from turnout.gateway.status_peers import StatusPeers
from turnout.gateway.stream_relay import relay_stream
from turnout.gateway.tracing_middleware import tracing_middlewares
from turnout.gateway.turnout_headers import error_headers
from turnout.gateway.worker_health import EJECTION_PHASES, WorkerHealth
from turnout.observe.events import HttpRequestFinished
from turnout.router.limits import LimitsView
from turnout.secrets import SHAPES_ONLY, Redactor
from turnout.wire import Operation

logger = logging.getLogger("turnout.gateway")

GATEWAY = web.AppKey("gateway", Gateway)
#: The worker's view of the other workers' health (None: one worker, or a shared store).
WORKERS: web.AppKey[WorkerHealth | None] = web.AppKey("workers")
_ENCODE = msgspec.json.Encoder().encode
_JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    gateway: Gateway,
    workers: WorkerHealth | None = None,
    peers: StatusPeers | None = None,
    shared_dir: str | None = None,
) -> web.Application:
    """The application serving `gateway`; with `workers`, `/health` merges every worker's view
    (`turnout.gateway.worker_health`), and with `peers`, `/status` every worker's traffic
    (`turnout.gateway.status_peers`); `shared_dir`: the directory a gateway's workers share
    (where stored responses are kept unless they are in Redis)."""
    # Bodies are read by `server.body.read_body`, against the limit in force at each request
    # (a reload changes it), so aiohttp's own fixed `client_max_size` is not used.
    traced = tracing_middlewares(
        gateway.tracing, [*(path for path, _ in _PATHS), *RESPONSES_PATHS, MESSAGES_PATH]
    )
    app = web.Application(middlewares=[*traced, _openai_errors])
    app.on_response_prepare.append(_name_the_answer)
    app[GATEWAY] = gateway
    app[WORKERS] = workers
    for path, operation in _PATHS:
        app.router.add_post(path, _completion_route(operation), expect_handler=_expect_continue)
    add_messages_routes(app, GATEWAY)
    add_model_routes(app, GATEWAY)
    app.router.add_get("/health/live", _live)
    app.router.add_get("/health/ready", _ready)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/admin/reload", _reload)
    add_management_routes(app, GATEWAY)
    add_responses_routes(app, GATEWAY, _expect_continue, shared_dir)
    add_status_routes(app, gateway, workers, peers)
    return app


# ---- errors ------------------------------------------------------------------------------


def error_response(
    error: TurnoutError,
    redactor: Redactor = SHAPES_ONLY,
    headers: dict[str, str] | None = None,
    shape: ErrorShape | None = None,
) -> web.Response:
    """The error as OpenAI's body (or in the route's `shape`), redacted: the last pass before a
    client sees it. `headers`: the retry advice (`turnout.gateway.advice`); without it, no
    repeat is advised."""
    body = redactor.error_body(error)
    return web.Response(
        status=error.status,
        body=_ENCODE(body)
        if shape is None
        else shape(error.status, body["error"]["message"], error),
        content_type=_JSON,
        headers=headers if headers is not None else retry_headers(error, 0.0, 0.0),
    )


@web.middleware
async def _openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    exchange = exchange_of(request)
    status = 500
    error_kind: str | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except TurnoutError as error:
        status = error.status
        error_kind = error.kind.value
        gateway = request.app[GATEWAY]
        deadline = exchange.deadline
        now = time.perf_counter()
        time_left = 0.0 if deadline is None else deadline - now
        advice = retry_headers(error, time_left, gateway.router.config.retries.max_retry_after)
        # A new dict: the advice may be shared.
        advice = {**advice, **error_headers(error.attempts, exchange.model_group, now - started)}
        if isinstance(error, LedgerRefusal):
            advice.update(error.headers)
        response = error_response(error, gateway.redactor, advice, request.get(ERROR_SHAPE))
        if not request.content.is_eof():
            response.force_close()  # the body was not read: this connection cannot carry more
        return response
    except web.HTTPException as exc:
        status = exc.status
        return _http_error(exc)
    except Exception:
        error_kind = "internal"
        logger.exception("unexpected error serving %s %s", request.method, request.path)
        message = "The gateway failed to handle the request"
        shape = request.get(ERROR_SHAPE)
        return web.Response(
            status=500,
            body=framing.error_body(500, message, "internal_error")
            if shape is None
            else shape(500, message, None),
            content_type=_JSON,
        )
    finally:
        if exchange.route is not None:
            _report(request, exchange, status, error_kind, time.perf_counter() - started)


def _report(
    request: web.Request, exchange: Exchange, status: int, error: str | None, took: float
) -> None:
    """The routed request's `HttpRequestFinished`, and with content capture, its content."""
    gateway = request.app[GATEWAY]
    ids = exchange.ids
    records = gateway.records
    if records is not None and gateway.capture_content and exchange.messages is not None:
        records.attach_content(ids.own, exchange.messages, exchange.answer)
    bus = gateway.bus
    if bus.active:
        assert exchange.route is not None
        bus.emit(
            HttpRequestFinished(
                exchange.route,
                exchange.model_group or "unknown",
                status,
                took,
                exchange.stream,
                exchange.first_byte,
                ids.own,
                ids.given,
                exchange.model,
                exchange.principal,
                error or exchange.error,
                request.get(TRACE_ID),
            )
        )


async def _name_the_answer(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer says which request it answers, whatever produced it (a handler, an error,
    a refused ``Expect``, aiohttp's own 404 or 405): as its headers are about to go out."""
    headers = response.headers
    if REQUEST_ID_HEADER not in headers:
        headers.update(id_headers(exchange_of(request).ids))


def _http_error(exc: web.HTTPException) -> web.Response:
    message = exc.reason
    if exc.status == 404:
        message = (
            "Unknown path: see /v1/chat/completions, /v1/completions, /v1/embeddings, "
            "/v1/responses, /v1/messages"
        )
    elif exc.status == 405:
        message = f"Method not allowed: {exc.reason}"
    return web.Response(
        status=exc.status,
        body=framing.error_body(exc.status, message, None),
        content_type=_JSON,
        headers={"allow": exc.headers["allow"]} if "allow" in exc.headers else None,
    )


# ---- completions, streams, embeddings ------------------------------------------------------

_PATHS = (
    ("/v1/chat/completions", Operation.CHAT),
    ("/chat/completions", Operation.CHAT),
    ("/v1/completions", Operation.COMPLETION),
    ("/completions", Operation.COMPLETION),
    ("/v1/embeddings", Operation.EMBEDDING),
    ("/embeddings", Operation.EMBEDDING),
)

_ROUTES = {
    Operation.CHAT: "chat_completions",
    Operation.COMPLETION: "completions",
    Operation.EMBEDDING: "embeddings",
}


def _completion_route(operation: Operation) -> Handler:
    route = _ROUTES[operation]

    async def handle(http: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        gateway = http.app[GATEWAY]
        exchange, caller, body = await read_call(http, gateway, route)
        ids = exchange.ids
        request = build_request(
            body, operation, http.headers, caller.principal, ids=(ids.own, ids.given)
        )
        exchange.model = request.model
        capture = gateway.capture_content
        if capture:
            exchange.messages = prompt_of(body)
        headers = await admitted(gateway, exchange, caller, request, started)
        router = gateway.router
        try:
            if request.stream:
                exchange.stream = True
                return await relay_stream(
                    http, gateway, request, started, headers, exchange, capture
                )
            if operation is Operation.EMBEDDING:
                answer = await router.embed(request)
            else:
                answer = await router.complete(request)
        finally:
            if gateway.spend is not None:
                gateway.spend.never_routed(request.request_id)
        if capture:
            exchange.answer = answer.text
        headers.update(served_by(answer, started))
        return web.Response(body=answer.encode(), content_type=_JSON, headers=headers)

    return handle


async def _expect_continue(http: web.Request) -> web.StreamResponse | None:
    """Before a client that asked sends its body: refuse now what would be refused after it.
    Other expectations are ignored, as RFC 9110 allows (the connection guard drops them)."""
    if http.headers.get("expect", "").lower() != "100-continue":
        return None
    gateway = http.app[GATEWAY]
    try:
        await gateway.identify(http.headers)
        check_declared_length(http, gateway.config.server.max_body_bytes)
    except TurnoutError as error:
        response = error_response(error)
        response.force_close()
        return response
    if http.version == HttpVersion11:
        await http.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        http.writer.output_size = 0
    return None


# ---- models, health, metrics, admin -------------------------------------------------------


async def _live(http: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type=_JSON)


async def _ready(http: web.Request) -> web.Response:
    gateway = http.app[GATEWAY]
    if gateway.draining:
        body = {"status": "draining"}
        return web.Response(status=503, body=_ENCODE(body), content_type=_JSON)
    return web.Response(body=b'{"status":"ready"}', content_type=_JSON)


async def _health(http: web.Request) -> web.Response:
    gateway = http.app[GATEWAY]
    gateway.auth.authenticate(http.headers)
    entries = await gateway.router.health()
    names = {deployment.id: deployment.name for deployment in gateway.router.deployments()}
    deployments = [
        {
            "id": entry.deployment_id,
            "name": names.get(entry.deployment_id, entry.deployment_id),
            "model_group": entry.model_group,
            "provider": entry.provider,
            "model": entry.model,
            "in_flight": entry.in_flight,
            "cooling_down": entry.cooling_down,
            "cooldown_reason": entry.cooldown_reason.value if entry.cooldown_reason else None,
            "cooldown_seconds_left": round(entry.cooldown_left, 3),
            "breaker": entry.breaker.name.lower(),
            "ejection": EJECTION_PHASES[entry.breaker],
            "ejections": entry.ejections,
            "probes_in_flight": entry.probes,
            "latency_ms": round(entry.latency * 1000, 2) if entry.latency is not None else None,
            "ttft_ms": round(entry.ttft * 1000, 2) if entry.ttft is not None else None,
            "reliability": round(entry.reliability, 4),
            "timeouts": _limits(entry.limits),
        }
        for entry in entries
    ]
    body: dict[str, Any] = {
        "status": "draining" if gateway.draining else "ok",
        "state": gateway.router.state_status(),
    }
    workers = http.app[WORKERS]
    if workers is not None:
        # Several workers, each with its own state: the gateway's view is their merge.
        merged, body["workers"] = workers.merged(entries)
        for deployment, fields in zip(deployments, merged, strict=True):
            deployment.update(fields)
    body["deployments"] = deployments
    return web.Response(body=_ENCODE(body), content_type=_JSON)


def _limits(view: LimitsView | None) -> dict[str, Any] | None:
    """A deployment's current attempt limits: seconds and where each comes from."""
    if view is None:
        return None
    return {
        name: None
        if limit is None
        else {"seconds": round(limit.seconds, 3), "source": limit.source, "samples": limit.samples}
        for name, limit in (
            ("first_token", view.first_token),
            ("idle", view.idle),
            ("request", view.request),
        )
    }


async def _metrics(http: web.Request) -> web.Response:
    gateway = http.app[GATEWAY]
    gateway.metrics_auth.authenticate(http.headers)
    body, content_type = gateway.metrics.render()
    response = web.Response(body=body)
    response.headers["content-type"] = content_type
    return response


async def _reload(http: web.Request) -> web.Response:
    gateway = http.app[GATEWAY]
    principal = gateway.auth.authenticate(http.headers)
    if gateway.config.server.master_key is None:
        raise InvalidRequestError("reloading over HTTP needs a master key to be configured")
    logger.info("reload requested over HTTP by %s", principal.name)
    summary = await gateway.reload()
    return web.Response(body=_ENCODE(summary), content_type=_JSON)
