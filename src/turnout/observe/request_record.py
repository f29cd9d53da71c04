"""One record per request, assembled from its events: who asked, what served it, every attempt.

`RecordAssembler` observes the bus and gathers each request's attempts (their reasons,
outcomes, timings and upstream ids) until the request ends, then hands one `RequestRecord` to
its sinks. The request log writes it as a JSON line (`turnout.observe.request_log`); a status
page or a traffic replay can take the same records through the one-method `RecordSink`.

Behind the gateway a request ends with its `HttpRequestFinished`, which knows the status the
caller got and also ends the requests refused before routing (a wrong key, a bad body, an
unknown model, a budget), which have no attempts. A router used as a library has no HTTP
answer: there the request ends at its `RequestFinished` (`ends_with_http=False`).

Observers run inline on the request's path, so each event costs a dictionary lookup and an
append; the record is built once, at the end. Memory is bounded: at most `max_open` requests
are followed at once (past it, the oldest is dropped: its record would come out without its
attempts), and at most `MAX_ATTEMPTS` attempts are kept per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from turnout.clock import Clock
from turnout.errors import FailureKind
from turnout.observe.events import (
    AttemptFinished,
    AttemptStarted,
    Event,
    HedgeSettled,
    HttpRequestFinished,
    RequestFinished,
    RequestStarted,
)
from turnout.wire import Principal

#: Requests followed at once, at most.
MAX_OPEN = 8192
#: Attempts kept per request, at most (the router makes a handful; this bounds a pathology).
MAX_ATTEMPTS = 32


class Tokens(msgspec.Struct, frozen=True):
    """Tokens billed over every attempt of the request."""

    prompt: int
    completion: int
    total: int
    cached: int


class AttemptEntry(msgspec.Struct, frozen=True):
    """One attempt: which deployment, why it started, how it ended, and when."""

    deployment: str
    provider: str
    #: primary, retry, fallback, hedge or failover.
    reason: str
    #: ``ok``, ``error`` (``deadline`` among its kinds: cut by the request's deadline),
    #: ``cancelled`` (the caller left) or ``lost_race`` (a hedged duplicate answered first).
    outcome: str
    error: str | None
    status: int | None
    #: Milliseconds from the request's start in the router to the attempt's start.
    start_ms: float
    duration_ms: float
    ttft_ms: float | None
    upstream_request_id: str | None


class RequestRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """One request, whichever way it ended. The fields with defaults appear in its JSON only
    when set: the trace (when requests are traced) and captured content (when asked for)."""

    #: When the request arrived, ISO 8601 in UTC.
    time: str
    #: The id the caller knows it by (its own ``x-request-id``, else the gateway's).
    request_id: str
    #: The caller's key: its alias, else the first 8 hex digits of its digest, else
    #: ``master``; None when unknown (a refused key) or when no key is needed.
    key: str | None
    route: str | None
    #: The model name asked for, and the group that served it (a fallback's when one did;
    #: else the group the name resolved to).
    model: str | None
    model_group: str | None
    #: The deployment that served it (readable name) and its provider (for a stream that broke
    #: after it began, the last one that streamed); None when none did.
    deployment: str | None
    provider: str | None
    #: The HTTP status answered (None for a library call).
    status: int | None
    #: The failure kind when it failed, or when a stream broke after it began.
    error: str | None
    stream: bool
    latency_ms: float
    #: To the first byte of a stream's answer.
    ttft_ms: float | None
    tokens: Tokens
    #: US dollars billed over every attempt (None: nothing priced was consumed).
    cost: float | None
    attempts: list[AttemptEntry]
    trace_id: str | None = None
    #: With content capture: the request's messages (or prompt, or input) and the answer's
    #: text, each shortened to a bound.
    messages: object = None
    answer: str | None = None
    #: The gateway's own id for the request, where it differs from ``request_id``.
    gateway_id: str | None = None


class RecordSink(Protocol):
    """Receives each finished request's record. Called inline: be cheap, queue anything slow."""

    def on_record(self, record: RequestRecord) -> None: ...


class _Open:
    """A request followed until it ends."""

    __slots__ = (
        "answer",
        "attempts",
        "lost",
        "messages",
        "model",
        "principal",
        "started",
        "stream",
    )

    def __init__(self) -> None:
        self.started: float | None = None
        self.model: str | None = None
        self.principal: Principal | None = None
        self.stream = False
        #: The attempts that ended, in the order they did.
        self.attempts: list[AttemptFinished] = []
        #: Deployments whose attempt lost a hedged race.
        self.lost: set[str] = set()
        self.messages: object = None
        self.answer: str | None = None


class RecordAssembler:
    """Observes the bus; hands each finished request's `RequestRecord` to every sink."""

    __slots__ = ("_clock", "_ends_with_http", "_max_open", "_open", "_sinks", "dropped")

    def __init__(
        self,
        clock: Clock,
        sinks: Iterable[RecordSink] = (),
        *,
        ends_with_http: bool = True,
        max_open: int = MAX_OPEN,
    ) -> None:
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self._clock = clock
        self._sinks: tuple[RecordSink, ...] = tuple(sinks)
        self._ends_with_http = ends_with_http
        self._max_open = max_open
        self._open: dict[str, _Open] = {}
        #: Requests forgotten before their end, to stay within `max_open`.
        self.dropped = 0

    def add_sink(self, sink: RecordSink) -> None:
        """Hand records to `sink` too, from the next request that ends."""
        self._sinks = (*self._sinks, sink)

    @property
    def open_requests(self) -> int:
        return len(self._open)

    def attach_content(self, request_id: str, messages: object, answer: str | None) -> None:
        """The request's content, captured by the gateway (never sent through the bus)."""
        entry = self._entry(request_id)
        entry.messages, entry.answer = messages, answer

    def on_event(self, event: Event) -> None:
        # The commonest events first: this runs for every event of every request.
        if isinstance(event, AttemptFinished):
            entry = self._open.get(event.request_id)
            if entry is not None and len(entry.attempts) < MAX_ATTEMPTS:
                entry.attempts.append(event)
        elif isinstance(event, AttemptStarted):
            return
        elif isinstance(event, RequestStarted):
            entry = self._entry(event.request_id)
            entry.started, entry.model, entry.stream = event.at, event.model, event.stream
            entry.principal = event.principal
        elif isinstance(event, HttpRequestFinished):
            self._finish(self._open.pop(event.request_id, None), event)
        elif isinstance(event, RequestFinished):
            if not self._ends_with_http:
                self._finish(self._open.pop(event.request_id, None), None, event.request_id)
        elif isinstance(event, HedgeSettled) and event.cancelled is not None:
            entry = self._open.get(event.request_id)
            if entry is not None:
                entry.lost.add(event.cancelled)

    def _entry(self, request_id: str) -> _Open:
        entry = self._open.get(request_id)
        if entry is None:
            if len(self._open) >= self._max_open:
                del self._open[next(iter(self._open))]
                self.dropped += 1
            entry = self._open[request_id] = _Open()
        return entry

    def _finish(
        self, entry: _Open | None, http: HttpRequestFinished | None, request_id: str = ""
    ) -> None:
        if not self._sinks:
            return
        record = build_record(entry or _Open(), http, request_id, self._clock)
        for sink in self._sinks:
            sink.on_record(record)


def build_record(
    entry: _Open, http: HttpRequestFinished | None, request_id: str, clock: Clock
) -> RequestRecord:
    """The record of a request that ended: from its HTTP answer when it had one."""
    now = clock.now()
    origin = entry.started
    attempts = entry.attempts
    if origin is None:
        origin = min((a.at - a.duration for a in attempts), default=now)
    if http is not None:
        latency = http.duration
        request_id = http.client_request_id or http.request_id
    else:
        latency = max(0.0, now - origin)
    served = next((a for a in reversed(attempts) if a.error is None), None)
    if served is None and http is not None and http.ttft is not None and attempts:
        served = attempts[-1]  # a stream that began, then broke: it served what was sent
    principal = http.principal if http is not None and http.principal else entry.principal
    prompt = completion = cached = 0
    costs = [a.cost for a in attempts if a.cost is not None]
    for attempt in attempts:
        if attempt.usage is not None:
            prompt += attempt.usage.prompt_tokens
            completion += attempt.usage.completion_tokens
            cached += attempt.usage.cached_tokens
    group = http.model_group if http is not None else None
    if served is not None:
        group = served.model_group  # a fallback's group, when one served
    elif group in (None, "unknown"):
        group = attempts[0].model_group if attempts else None
    error = http.error if http is not None else None
    if http is None and served is None and attempts:
        error = _kind(attempts[-1].error)
    return RequestRecord(
        time=_iso(clock.wall() - latency),
        request_id=request_id,
        key=key_label(principal),
        route=http.route if http is not None else None,
        model=(http.model if http is not None else None) or entry.model,
        model_group=group,
        deployment=(served.deployment_name or served.deployment_id) if served else None,
        provider=served.provider or None if served else None,
        status=http.status if http is not None else None,
        error=error,
        stream=http.stream if http is not None else entry.stream,
        latency_ms=_ms(latency),
        ttft_ms=_ms(http.ttft) if http is not None and http.ttft is not None else None,
        tokens=Tokens(prompt, completion, prompt + completion, cached),
        cost=sum(costs) if costs else None,
        attempts=[_attempt(a, origin, entry.lost) for a in attempts],
        trace_id=http.trace_id if http is not None else None,
        messages=entry.messages,
        answer=entry.answer,
        gateway_id=http.request_id if http is not None and http.client_request_id else None,
    )


def _attempt(event: AttemptFinished, origin: float, lost: set[str]) -> AttemptEntry:
    error = event.error
    if error is None:
        outcome = "ok"
    elif error is FailureKind.CANCELLED:
        outcome = "lost_race" if event.deployment_id in lost else "cancelled"
    else:
        outcome = "error"
    return AttemptEntry(
        deployment=event.deployment_name or event.deployment_id,
        provider=event.provider,
        reason=event.reason,
        outcome=outcome,
        error=_kind(error),
        status=event.status,
        start_ms=_ms(max(0.0, event.at - event.duration - origin)),
        duration_ms=_ms(event.duration),
        ttft_ms=_ms(event.ttft) if event.ttft is not None else None,
        upstream_request_id=event.upstream_request_id,
    )


def key_label(principal: Principal | None) -> str | None:
    """How a record names the caller's key: its alias, else the first 8 hex digits of its
    digest, else ``master``; never the key itself."""
    if principal is None:
        return None
    if principal.key_alias:
        return principal.key_alias
    if principal.key_hash:
        return principal.key_hash[:8]
    if principal.name == "master":
        return "master"
    return None


def _kind(error: FailureKind | None) -> str | None:
    return error.value if error is not None else None


def _ms(seconds: float) -> float:
    """Milliseconds to two decimals (`round` costs several times more, on every request)."""
    return int(seconds * 100_000 + 0.5) / 100


#: The second last formatted, and its text up to the milliseconds: lines come many a second.
_second: list[tuple[int, str]] = [(-1, "")]


def _iso(wall: float) -> str:
    """``2026-12-02T14:57:32.451Z``: the date and time are formatted once per second."""
    # As `datetime.fromtimestamp` does: the fraction to the microsecond, then cut to the
    # millisecond.
    second = int(wall)
    micros = round((wall - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    within = micros // 1000
    cached, text = _second[0]
    if second != cached:
        moment = datetime.fromtimestamp(second, UTC)
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.")
        _second[0] = (second, text)
    return f"{text}{within:03d}Z"
