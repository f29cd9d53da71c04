"""Accounting: what each routed request really consumed, charged to its ledger ticket and
written as one spend log row.

The tracker observes the router's bus. The gateway registers each request before routing it
(`track`); every `AttemptFinished` of that request adds what the attempt consumed (the router
reports usage for answers, for streams that broke or were given up after content, for hedged
duplicates that lost their race, and for the segments of a stream continued elsewhere), priced
exactly (`turnout.governance.estimate.exact_cost`, integer micro-dollars). At `RequestFinished`,
the request's last event, the tracker settles its ticket with the sum (or releases it when
nothing was consumed) and hands its row to the spend sink. Both happen in a task off the
request's path; `aclose` waits for those in flight.

Tickets of requests still running (long streams) are renewed periodically, so that their holds
outlive the ledger's hold time only while their request does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from turnout.config.router import Deployment
from turnout.governance.estimate import exact_cost
from turnout.governance.ledger import Ledger, MemoryLedger, Ticket
from turnout.governance.records import SpendRow
from turnout.governance.spend_sink import SpendSink
from turnout.observe.events import AttemptFinished, Event, RequestFinished, RequestStarted
from turnout.wire import Principal

logger = logging.getLogger("turnout.gateway")

#: Requests tracked at once at most: beyond it (requests whose end never came), the oldest go.
TRACKED_LIMIT: Final = 100_000


@dataclass(slots=True)
class _Open:
    principal: Principal | None
    model_group: str
    ticket: Ticket | None
    start: datetime
    #: The router's monotonic time at `RequestStarted` (None until then).
    started_at: float | None = None
    attempts: list[AttemptFinished] = field(default_factory=list)
    #: When the ticket was last renewed (`time.monotonic`).
    renewed: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Consumed:
    """What a request consumed, over all its attempts."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class SpendTracker:
    """Accounts every tracked request once it ends. `deployments`: the router's current list
    (read at each request's end, so that a reload's prices apply to requests ending after it).
    `renew_every`: seconds between renewals of a running request's ticket."""

    def __init__(
        self,
        ledger: Ledger,
        sink: SpendSink,
        deployments: Callable[[], tuple[Deployment, ...]],
        *,
        renew_every: float = 60.0,
    ) -> None:
        self.ledger = ledger
        self.sink = sink
        self._deployments = deployments
        self._by_id: tuple[tuple[Deployment, ...], Mapping[str, Deployment]] = ((), {})
        self._open: dict[str, _Open] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._renew_every = renew_every
        self._renewer: asyncio.Task[None] | None = None

    def track(
        self, request_id: str, principal: Principal | None, model_group: str, ticket: Ticket | None
    ) -> None:
        """Account the request `request_id` when it ends (its ticket, None: nothing held)."""
        if len(self._open) >= TRACKED_LIMIT:
            self._open.pop(next(iter(self._open)))
        self._open[request_id] = _Open(principal, model_group, ticket, datetime.now(UTC))
        if ticket is not None and self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew())

    def never_routed(self, request_id: str) -> None:
        """The router refused `request_id` before starting it (no events will come): free its
        holds."""
        entry = self._open.get(request_id)
        if entry is not None and entry.started_at is None:
            del self._open[request_id]
            if entry.ticket is not None:
                self._spawn(self._release(entry.ticket))

    def on_event(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            entry = self._open.get(event.request_id)
            if entry is not None:
                entry.attempts.append(event)
        elif isinstance(event, RequestStarted):
            entry = self._open.get(event.request_id)
            if entry is not None:
                entry.started_at = event.at
        elif isinstance(event, RequestFinished):
            entry = self._open.pop(event.request_id, None)
            if entry is None:
                return
            ledger = self.ledger
            if entry.ticket is not None and not isinstance(ledger, MemoryLedger):
                self._spawn(self._finish(event.request_id, entry, datetime.now(UTC)))
                return
            # Nothing held (the master key, a key without budgets or limits) or held in this
            # process's memory: settled at once, and the row queued now when the queue has
            # room (no task per request).
            consumed = self.consumed(entry.attempts)
            if entry.ticket is not None:
                assert isinstance(ledger, MemoryLedger)
                try:
                    ledger.settle_now(entry.ticket, consumed.cost, consumed.tokens)
                except Exception as error:
                    logger.warning(
                        "settling request %s failed: %s", event.request_id, type(error).__name__
                    )
            row = self._row(event.request_id, entry, datetime.now(UTC), consumed)
            if not self.sink.offer(row):
                self._spawn(self.sink.submit(row))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _deployment(self, deployment_id: str) -> Deployment | None:
        current = self._deployments()
        if self._by_id[0] is not current:
            self._by_id = (current, {d.id: d for d in current})
        return self._by_id[1].get(deployment_id)

    def consumed(self, attempts: list[AttemptFinished]) -> Consumed:
        """The usage of `attempts`, summed, and its exact price (an unpriced one costs 0)."""
        prompt = completion = cached = cost = 0
        for attempt in attempts:
            usage = attempt.usage
            if usage is None:
                continue
            prompt += usage.prompt_tokens
            completion += usage.completion_tokens
            cached += usage.cached_tokens
            deployment = self._deployment(attempt.deployment_id)
            if deployment is not None:
                priced = exact_cost(
                    deployment, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
                )
                cost += priced or 0
        return Consumed(prompt, completion, cached, cost)

    async def _finish(self, request_id: str, entry: _Open, end: datetime) -> None:
        consumed = self.consumed(entry.attempts)
        if entry.ticket is not None:
            try:
                if consumed.cost or consumed.tokens:
                    await self.ledger.settle(entry.ticket, consumed.cost, consumed.tokens)
                else:
                    await self.ledger.release(entry.ticket)
            except Exception as error:
                logger.warning("settling request %s failed: %s", request_id, type(error).__name__)
        await self.sink.submit(self._row(request_id, entry, end, consumed))

    async def _release(self, ticket: Ticket) -> None:
        try:
            await self.ledger.release(ticket)
        except Exception as error:
            logger.warning("releasing a hold failed: %s", type(error).__name__)

    def _row(self, request_id: str, entry: _Open, end: datetime, consumed: Consumed) -> SpendRow:
        principal = entry.principal
        attempts = entry.attempts
        served = next((a for a in reversed(attempts) if a.error is None), None)
        last = served or (attempts[-1] if attempts else None)
        deployment = self._deployment(last.deployment_id) if last is not None else None
        first_token = None
        if entry.started_at is not None:
            for attempt in attempts:
                if attempt.ttft is not None:
                    offset = attempt.at - attempt.duration - entry.started_at + attempt.ttft
                    first_token = entry.start + timedelta(seconds=max(0.0, offset))
                    break
        return SpendRow(
            request_id=request_id,
            api_key=(principal.key_hash or "") if principal is not None else "",
            key_alias=principal.key_alias if principal is not None else None,
            team_id=principal.team_id if principal is not None else None,
            user_id=principal.user_id if principal is not None else None,
            model_group=entry.model_group,
            model=deployment.model if deployment is not None else "",
            deployment=last.deployment_id if last is not None else None,
            provider=deployment.provider if deployment is not None else "",
            prompt_tokens=consumed.prompt_tokens,
            completion_tokens=consumed.completion_tokens,
            cached_tokens=consumed.cached_tokens,
            spend=consumed.cost,
            start_time=entry.start,
            end_time=max(end, entry.start),
            completion_start_time=first_token,
            status="success" if served is not None else "failure",
            attempts="; ".join(
                f"{a.deployment_id} {a.error.value if a.error is not None else 'ok'}"
                for a in attempts
            ),
        )

    async def _renew(self) -> None:
        """Renew the tickets of requests running longer than `renew_every`."""
        while True:
            await asyncio.sleep(self._renew_every)
            now = time.monotonic()
            for entry in list(self._open.values()):
                if entry.ticket is not None and now - entry.renewed >= self._renew_every:
                    entry.renewed = now
                    try:
                        await self.ledger.renew(entry.ticket)
                    except Exception as error:
                        logger.warning("renewing a hold failed: %s", type(error).__name__)

    async def aclose(self) -> None:
        """Stop renewing and wait for the requests being accounted."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
