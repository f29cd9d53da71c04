"""Router events as structured log lines (``key=value``), through the standard logging module.

Health changes (cooldowns, breaker transitions, fallbacks) and requests failed as the cause of
the server errors they met (poison requests) are warnings: an operator should see them. Failed
attempts are warnings too; retries are info. Each served request is logged at debug level, or at
info with ``routing_detail`` (the demo turns it on, so a newcomer watches routing
happen: which deployment served, chosen by which strategy, after which failures).
No line ever carries a key or a request's content: only ids, names, numbers and error kinds.
Deployments are named readably (`Deployment.name`, through `names`); lines an operator acts on
(a cooldown to lift, a breaker, a failed attempt) give the deployment's id too, which the
management API and /health use.

To name the failures a served request got past, the observer remembers each request's failed
attempts until the request ends (`RequestFinished`, whichever way it ended). A hard cap on the
requests remembered keeps its memory bounded even so: past it, the oldest is forgotten, which
costs that request only the ``after=`` note of its served line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from turnout.errors import FailureKind
from turnout.observe.events import (
    AttemptFinished,
    AttemptStarted,
    BreakerTransition,
    BudgetExhausted,
    CooldownEntered,
    CooldownLeft,
    Event,
    FallbackTaken,
    HedgeFired,
    HedgeSettled,
    HttpRequestFinished,
    PoisonRequest,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
    StreamFailover,
)

logger = logging.getLogger("turnout.routing")


#: Requests whose failed attempts are remembered at once, at most (about 1 kB each at most).
MAX_TRACKED_REQUESTS = 4096
#: Failed attempts remembered per request, at most.
_MAX_FAILURES = 16


def _same(deployment_id: str) -> str:
    return deployment_id


class LogObserver:
    """`names`: a deployment's readable name from its id (events that carry only the id)."""

    __slots__ = ("_detail", "_failed", "_max_tracked", "_name", "_strategy")

    def __init__(
        self,
        strategy: str,
        *,
        routing_detail: bool = False,
        max_tracked: int = MAX_TRACKED_REQUESTS,
        names: Callable[[str], str] | None = None,
    ) -> None:
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")
        self._strategy = strategy
        self._name = names or _same
        self._detail = logging.INFO if routing_detail else logging.DEBUG
        self._max_tracked = max_tracked
        #: Failed attempts per request id, oldest request first, until the request ends.
        self._failed: dict[str, list[str]] = {}

    @property
    def tracked_requests(self) -> int:
        """Requests whose failed attempts are remembered now (in flight, having failed)."""
        return len(self._failed)

    def on_event(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            self._attempt(event)
        elif isinstance(event, (AttemptStarted, RequestStarted, HttpRequestFinished)):
            return  # the commonest events, and nothing to log
        elif isinstance(event, RequestFinished):
            if self._failed:
                self._failed.pop(event.request_id, None)
        elif isinstance(event, CooldownEntered):
            logger.warning(
                "cooldown deployment=%s id=%s reason=%s seconds=%.1f ejections=%d",
                self._name(event.deployment_id),
                event.deployment_id,
                event.reason.value,
                event.seconds,
                event.ejections,
            )
        elif isinstance(event, CooldownLeft):
            logger.info(
                "cooldown-over deployment=%s id=%s reason=%s",
                self._name(event.deployment_id),
                event.deployment_id,
                event.reason,
            )
        elif isinstance(event, BreakerTransition):
            logger.warning(
                "breaker deployment=%s id=%s from=%s to=%s",
                self._name(event.deployment_id),
                event.deployment_id,
                event.previous.name.lower(),
                event.current.name.lower(),
            )
        elif isinstance(event, FallbackTaken):
            logger.warning(
                "fallback from=%s to=%s kind=%s after=%s",
                event.from_group,
                event.to_group,
                event.kind.value,
                event.error.value,
            )
        elif isinstance(event, HedgeFired):
            logger.info(
                "hedge group=%s primary=%s hedge=%s after_ms=%.0f",
                event.model_group,
                self._name(event.primary),
                self._name(event.hedge),
                event.delay * 1000,
            )
        elif isinstance(event, HedgeSettled):
            logger.info(
                "hedge-settled group=%s winner=%s hedge_won=%s cancelled=%s",
                event.model_group,
                self._name(event.winner) if event.winner else "-",
                event.hedge_won,
                self._name(event.cancelled) if event.cancelled else "-",
            )
        elif isinstance(event, StreamFailover):
            logger.warning(
                "stream-failover group=%s failed=%s error=%s sent_chars=%d method=%s",
                event.model_group,
                self._name(event.failed),
                event.error.value,
                event.sent_chars,
                event.method,
            )
        elif isinstance(event, BudgetExhausted):
            logger.warning(
                "budget-exhausted group=%s kind=%s (not retried)", event.model_group, event.kind
            )
        elif isinstance(event, PoisonRequest):
            logger.warning(
                "poison-request group=%s deployments=%s attempts=%d "
                "(failed as the cause; counted against no deployment)",
                event.model_group,
                ",".join(self._name(d) for d in event.deployments),
                event.attempts,
            )
            self._failed.pop(event.request_id, None)
        elif isinstance(event, RetryScheduled):
            logger.info(
                "retry group=%s failed=%s error=%s delay_ms=%.0f",
                event.model_group,
                self._name(event.failed_deployment),
                event.error.value,
                event.delay * 1000,
            )

    def _attempt(self, event: AttemptFinished) -> None:
        if event.error is FailureKind.CANCELLED:
            self._failed.pop(event.request_id, None)
            logger.info(
                "attempt-abandoned group=%s deployment=%s attempt=%d ms=%.1f (the caller left)",
                event.model_group,
                event.deployment_name or event.deployment_id,
                event.attempt,
                event.duration * 1000,
            )
            return
        if event.error is not None:
            logger.warning(
                "attempt-failed group=%s deployment=%s id=%s attempt=%d reason=%s error=%s "
                "status=%s ms=%.1f upstream_id=%s",
                event.model_group,
                event.deployment_name or event.deployment_id,
                event.deployment_id,
                event.attempt,
                event.reason,
                event.error.value,
                event.status if event.status is not None else "-",
                event.duration * 1000,
                event.upstream_request_id or "-",
            )
            if logger.isEnabledFor(self._detail):
                self._remember(event)
            return
        failed = self._failed.pop(event.request_id, [])
        if not logger.isEnabledFor(self._detail):
            return
        usage = event.usage
        logger.log(
            self._detail,
            "served group=%s deployment=%s strategy=%s attempt=%d ms=%.1f tokens=%d cost=%s%s",
            event.model_group,
            event.deployment_name or event.deployment_id,
            self._strategy,
            event.attempt,
            event.duration * 1000,
            usage.total_tokens if usage else 0,
            f"{event.cost:.6f}" if event.cost is not None else "unknown",
            f" after={','.join(failed)}" if failed else "",
        )

    def _remember(self, event: AttemptFinished) -> None:
        assert event.error is not None
        failed = self._failed
        history = failed.get(event.request_id)
        if history is None:
            if len(failed) >= self._max_tracked:
                # An ending went unreported, or this many requests are failing at once: forget
                # the oldest rather than grow.
                del failed[next(iter(failed))]
            history = failed[event.request_id] = []
        if len(history) < _MAX_FAILURES:
            history.append(f"{event.deployment_name or event.deployment_id}:{event.error.value}")
