"""The OpenAI-compatible HTTP application: routes, errors, streams, headers.

Each handler parses, asks the router, and writes the answer; nothing else. Errors of every kind
leave through one middleware as OpenAI's error body with the status OpenAI would use. Answers
are written as the upstream's own bytes when no translation was needed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from aiohttp import HttpVersion11, web

from turnout.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    TurnoutError,
)
from turnout.gateway import framing
from turnout.gateway.advice import retry_headers
from turnout.gateway.body import check_declared_length, read_body
from turnout.gateway.gateway import Gateway
from turnout.gateway.ledger_errors import LedgerRefusal
from turnout.gateway.management import add_management_routes
from turnout.gateway.requests import build_request, parse_body, sdk_wait
from turnout.gateway.status import add_status_routes
from turnout.gateway.status_peers import StatusPeers
from turnout.gateway.tracing_middleware import tracing_middlewares
from turnout.gateway.virtual_keys import admit, visible_models
from turnout.gateway.worker_health import EJECTION_PHASES, WorkerHealth
from turnout.governance.ledger import rate_limit_headers
from turnout.observe.events import HttpRequestFinished
from turnout.router.limits import LimitsView
from turnout.router.result import Response
from turnout.router.streaming import Stream
from turnout.secrets import SHAPES_ONLY, Redactor
from turnout.wire import Operation

logger = logging.getLogger("turnout.gateway")

GATEWAY = web.AppKey("gateway", Gateway)
#: The worker's view of the other workers' health (None: one worker, or a shared store).
WORKERS: web.AppKey[WorkerHealth | None] = web.AppKey("workers")
#: What the error middleware learns about a request from its handler, for its
#: `HttpRequestFinished` event.
ROUTE = web.RequestKey("route", str)
MODEL_GROUP = web.RequestKey("model_group", str)
STREAMED = web.RequestKey("streamed", bool)
FIRST_BYTE = web.RequestKey("first_byte", float)
#: When the caller stops waiting (`time.perf_counter`), for the retry advice of an error.
DEADLINE = web.RequestKey("deadline", float)
_ENCODE = msgspec.json.Encoder().encode
_SSE_DONE = b"data: [DONE]\n\n"
_JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    gateway: Gateway, workers: WorkerHealth | None = None, peers: StatusPeers | None = None
) -> web.Application:
    """The application serving `gateway`; with `workers`, `/health` merges every worker's view
    (`turnout.gateway.worker_health`), and with `peers`, `/status` every worker's traffic
    (`turnout.gateway.status_peers`)."""
    # Bodies are read by `server.body.read_body`, against the limit in force at each request
    # (a reload changes it), so aiohttp's own fixed `client_max_size` is not used.
    traced = tracing_middlewares(gateway.tracing, [path for path, _ in _PATHS])
    app = web.Application(middlewares=[*traced, _openai_errors])
    app[GATEWAY] = gateway
    app[WORKERS] = workers
    for path, operation in _PATHS:
        app.router.add_post(path, _completion_route(operation), expect_handler=_expect_continue)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/models", _models)
    app.router.add_get("/health/live", _live)
    app.router.add_get("/health/ready", _ready)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/admin/reload", _reload)
    add_management_routes(app, GATEWAY)
    add_status_routes(app, gateway, workers, peers)
    return app


# ---- errors ------------------------------------------------------------------------------


def error_response(
    error: TurnoutError, redactor: Redactor = SHAPES_ONLY, headers: dict[str, str] | None = None
) -> web.Response:
    """The error as OpenAI's body, redacted: the last pass before a client sees it. `headers`:
    the retry advice (`turnout.gateway.advice`); without it, no repeat is advised."""
    return web.Response(
        status=error.status,
        body=_ENCODE(redactor.error_body(error)),
        content_type=_JSON,
        headers=headers if headers is not None else retry_headers(error, 0.0, 0.0),
    )


@web.middleware
async def _openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except TurnoutError as error:
        status = error.status
        gateway = request.app[GATEWAY]
        deadline = request.get(DEADLINE)
        time_left = 0.0 if deadline is None else deadline - time.perf_counter()
        advice = retry_headers(error, time_left, gateway.router.config.retries.max_retry_after)
        if isinstance(error, LedgerRefusal):
            advice = {**advice, **error.headers}
        response = error_response(error, gateway.redactor, advice)
        if not request.content.is_eof():
            response.force_close()  # the body was not read: this connection cannot carry more
        return response
    except web.HTTPException as exc:
        status = exc.status
        return _http_error(exc)
    except Exception:
        logger.exception("unexpected error serving %s %s", request.method, request.path)
        return web.Response(
            status=500,
            body=framing.error_body(
                500, "The gateway failed to handle the request", "internal_error"
            ),
            content_type=_JSON,
        )
    finally:
        route = request.get(ROUTE)
        if route is not None:
            bus = request.app[GATEWAY].bus
            if bus.active:
                bus.emit(
                    HttpRequestFinished(
                        route,
                        request.get(MODEL_GROUP, "unknown"),
                        status,
                        time.perf_counter() - started,
                        request.get(STREAMED, False),
                        request.get(FIRST_BYTE),
                    )
                )


def _http_error(exc: web.HTTPException) -> web.Response:
    message = exc.reason
    if exc.status == 404:
        message = "Unknown path: see /v1/chat/completions, /v1/completions, /v1/embeddings"
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
        http[ROUTE] = route
        gateway = http.app[GATEWAY]
        caller = await gateway.identify(http.headers)
        body = parse_body(await read_body(http, gateway.config.server.max_body_bytes))
        request = build_request(body, operation, http.headers, caller.principal)
        router = gateway.router
        if caller.grant is not None:
            admit(caller.grant, request, router.group_of)
        limit = request.timeout if request.timeout is not None else router.config.timeout
        http[DEADLINE] = started + limit
        group = http[MODEL_GROUP] = router.group_of(request.model)
        ticket = await gateway.hold(caller, request, group)
        # The id the request's spend-log row is under (``/spend/logs?request_id=``), and its
        # key's rate-limit standing.
        limits = {REQUEST_ID_HEADER: request.request_id}
        if ticket is not None:
            limits.update(rate_limit_headers(ticket.limits))
        try:
            if request.stream:
                http[STREAMED] = True
                return await _relay_stream(http, gateway, request, started, limits)
            if operation is Operation.EMBEDDING:
                answer = await router.embed(request)
            else:
                answer = await router.complete(request)
        finally:
            if gateway.spend is not None:
                gateway.spend.never_routed(request.request_id)
        headers = _answer_headers(answer, time.perf_counter() - started)
        headers.update(limits)
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


#: The response header naming the request's id, as the spend logs know it.
REQUEST_ID_HEADER = "x-request-id"


def _answer_headers(answer: Response, elapsed: float) -> dict[str, str]:
    upstream = sum(attempt.duration for attempt in answer.attempts)
    headers = {
        "x-turnout-deployment": answer.deployment.id,
        "x-turnout-model-group": answer.deployment.model_name,
        "x-turnout-attempts": str(len(answer.attempts)),
        "x-turnout-overhead-ms": f"{max(0.0, elapsed - upstream) * 1000:.2f}",
    }
    if answer.cost is not None:
        headers["x-turnout-cost"] = f"{answer.cost:.8f}"
    return headers


async def _relay_stream(
    http: web.Request,
    gateway: Gateway,
    request: Any,
    started: float,
    limits: Mapping[str, str],
) -> web.StreamResponse:
    """Relay chunk by chunk. Failures before the first chunk never reach the client (the router
    retried or failed over, or this raises into an ordinary error response); a failure after it
    ends the stream with an error event and no ``[DONE]``, so it cannot pass for complete."""
    stream = await _first_chunk(http, gateway, request, started)
    first_byte = time.perf_counter() - started
    http[FIRST_BYTE] = first_byte
    upstream = stream.ttft + sum(a.duration for a in stream.attempts)
    response = web.StreamResponse(
        headers={
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            "x-turnout-deployment": stream.deployment.id,
            "x-turnout-model-group": stream.deployment.model_name,
            "x-turnout-attempts": str(len(stream.attempts) + 1),
            "x-turnout-overhead-ms": f"{max(0.0, first_byte - upstream) * 1000:.2f}",
            **limits,
        }
    )
    try:
        _bound_send_buffer(http, gateway.config.server.stream_send_buffer_bytes)
        await response.prepare(http)
        try:
            async for chunk in stream:
                await response.write(b"data: " + chunk.encode() + b"\n\n")
        except TurnoutError as error:
            logger.warning(
                "stream-broken deployment=%s error=%s", stream.deployment.id, error.kind.value
            )
            body = gateway.redactor.error_body(error)
            await response.write(b"data: " + _ENCODE(body) + b"\n\n")
            return response
        await response.write(_SSE_DONE)
    except ConnectionError:
        # The client went away: close the upstream, free the deployment, write nothing more.
        await stream.aclose()
        return response
    finally:
        await stream.aclose()
    return response


async def _first_chunk(http: web.Request, gateway: Gateway, request: Any, started: float) -> Stream:
    """The router's stream once its first chunk is in, within the SDK's read timeout: the
    response begins with that chunk, and an SDK that sees nothing by then gives up and
    repeats the request. Past it, the caller gets a 504 that advises no repeat."""
    wait = sdk_wait(http.headers)
    if wait is None or http[DEADLINE] <= started + wait:
        return await gateway.router.stream(request)
    http[DEADLINE] = started + wait
    clock = gateway.clock
    try:
        async with clock.timeout_at(clock.now() + started + wait - time.perf_counter()):
            return await gateway.router.stream(request)
    except TimeoutError:
        raise DeadlineExceededError(
            f"No answer began within the client's read timeout (of which {wait:.3g}s are "
            "kept, the rest being the answer's way back)"
        ) from None


def _bound_send_buffer(http: web.Request, size: int) -> None:
    """Fix the connection's kernel send buffer at `size` bytes (0: leave it self-tuning).

    Between the upstream and the client a stream is buffered only in fixed amounts: the
    upstream client's read buffer, the transport's write buffer (``response.write`` waits for it
    to drain) and the kernel's socket buffers. The kernel tunes its send buffer up to megabytes
    for a client that stops reading; fixed, it bounds what a stalled client holds up, and a token
    stream never needs more to keep a reading client fed.
    """
    transport = http.transport
    sock = None if not size or transport is None else transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


# ---- models, health, metrics, admin -------------------------------------------------------


async def _models(http: web.Request) -> web.Response:
    gateway = http.app[GATEWAY]
    caller = await gateway.identify(http.headers)
    created = int(gateway.started_at)
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "turnout"}
        for name in visible_models(
            caller.grant, gateway.router.model_names(), gateway.router.group_of
        )
    ]
    return web.Response(body=_ENCODE({"object": "list", "data": data}), content_type=_JSON)


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
    deployments = [
        {
            "id": entry.deployment_id,
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
