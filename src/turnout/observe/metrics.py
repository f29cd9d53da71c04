"""Prometheus metrics for one gateway, built only from events: the router's and the gateway's.

`GatewayMetrics` owns its registry: two gateways in one process (or many tests) never share a
series. It is an `Observer`, called inline on every attempt, so each event costs a dictionary
lookup and a few increments: the labelled children are created once per label tuple and cached.
Besides events it learns only the configured deployments (`deployments`), to show their gauges
before any traffic and drop them when a reload removes them.

Labels are only names the configuration chose (model groups, deployment ids, providers), routes,
status codes and the values of turnout's own enums. Nothing an event carries beyond those reaches
a label, so no key, URL or request content has a path into the exposition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from turnout.errors import FailureKind
from turnout.health.record import BreakerPhase
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
from turnout.observe.genai_metrics import GenAiSeries
from turnout.observe.series import Buckets, Counter, Gauge, Histogram, Series, Shared, Value
from turnout.observe.spend_log_metrics import SpendLogSeries

#: Seconds: from a cached or tiny answer (5 ms) to a long generation (two minutes).
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip

_PHASE_LABELS: Final = {phase: phase.name.lower() for phase in BreakerPhase}


class _AttemptSeries:
    """The attempt children of one (model group, deployment) pair."""

    __slots__ = ("completion", "cost", "duration", "outcomes", "prompt")

    def __init__(self, metrics: GatewayMetrics, group: str, deployment: str) -> None:
        self.duration = metrics.attempt_duration.labels(group, deployment)
        self.prompt = metrics.tokens.labels(group, deployment, "prompt")
        self.completion = metrics.tokens.labels(group, deployment, "completion")
        self.cost = metrics.cost.labels(group, deployment)
        #: Outcome (None: success) -> the attempts counter; filled as outcomes occur.
        self.outcomes: dict[FailureKind | None, Value] = {}


class _DeploymentGauges:
    """The gauges of one deployment, and the in-flight count that keeps its gauge >= 0."""

    __slots__ = ("breaker", "cooling", "ejections", "in_flight", "running")

    def __init__(self, metrics: GatewayMetrics, deployment: str) -> None:
        self.in_flight = metrics.in_flight.labels(deployment)
        self.cooling = metrics.cooling_down.labels(deployment)
        self.breaker = metrics.breaker_state.labels(deployment)
        self.ejections = metrics.ejections.labels(deployment)
        self.running = 0


class _RequestSeries:
    """The request children of one (route, model group) pair."""

    __slots__ = ("duration", "statuses")

    def __init__(self, metrics: GatewayMetrics, route: str, group: str) -> None:
        self.duration = metrics.request_duration.labels(route, group)
        self.statuses: dict[int, Value] = {}


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of their own.

    Subscribe it to the gateway's bus (it is an `Observer`); tell it the configured deployments
    at start and on every reload (`deployments`); serve `render()` at ``/metrics``. In a gateway
    of several workers, `shared` (`turnout.observe.multiprocess.WorkerFiles`) makes every series
    write through to the worker's files, and `render()` merges all workers' (each gauge by its
    `mode`: in-flight attempts add up, a deployment's cooldown, phase and ejections take the
    highest any worker holds).
    """

    def __init__(self, shared: Shared | None = None) -> None:
        registry = self._series = Series(shared)
        self.registry = registry.registry
        buckets = LATENCY_BUCKETS
        self.requests = Counter(
            "turnout_requests",
            "HTTP requests answered, by route, model group and status code.",
            ("route", "model_group", "status"),
            registry,
        )
        self.request_duration = Histogram(
            "turnout_request_duration_seconds",
            "Time from receiving a request to finishing its answer.",
            ("route", "model_group"),
            registry,
            buckets=buckets,
        )
        self.ttft = Histogram(
            "turnout_time_to_first_token_seconds",
            "Time from receiving a streamed request to sending its first token.",
            ("model_group",),
            registry,
            buckets=buckets,
        )
        self.attempts = Counter(
            "turnout_attempts",
            'Upstream attempts, by outcome ("success" or the failure kind).',
            ("model_group", "deployment", "outcome"),
            registry,
        )
        self.attempt_duration = Histogram(
            "turnout_attempt_duration_seconds",
            "Duration of upstream attempts, successful or not.",
            ("model_group", "deployment"),
            registry,
            buckets=buckets,
        )
        self.tokens = Counter(
            "turnout_tokens",
            "Tokens reported by upstream deployments, by kind (prompt or completion).",
            ("model_group", "deployment", "kind"),
            registry,
        )
        self.cost = Counter(
            "turnout_cost_usd",
            "Cost of upstream attempts in US dollars.",
            ("model_group", "deployment"),
            registry,
        )
        self.in_flight = Gauge(
            "turnout_in_flight",
            "Upstream attempts running now.",
            ("deployment",),
            registry,
            mode="livesum",
        )
        self.fallbacks = Counter(
            "turnout_fallbacks",
            "Fallbacks from one model group to another, by fallback list.",
            ("from_group", "to_group", "kind"),
            registry,
        )
        self.retries = Counter(
            "turnout_retries",
            "Retries scheduled, by the failure kind that caused them.",
            ("model_group", "reason"),
            registry,
        )
        self.cooldowns = Counter(
            "turnout_cooldowns",
            "Ejections (cooldowns) entered, by reason.",
            ("deployment", "reason"),
            registry,
        )
        self.cooling_down = Gauge(
            "turnout_deployment_cooling_down",
            "1 while the deployment is ejected (out of rotation until its expiry), else 0.",
            ("deployment",),
            registry,
            mode="livemax",
            state=True,
        )
        self.breaker_state = Gauge(
            "turnout_breaker_state",
            "Ejection phase: 0 closed (in rotation), 1 open (ejected), 2 half-open (probing).",
            ("deployment",),
            registry,
            mode="livemax",
            state=True,
        )
        self.breaker_transitions = Counter(
            "turnout_breaker_transitions",
            "Ejection phase transitions, by the phase entered.",
            ("deployment", "to"),
            registry,
        )
        self.ejections = Gauge(
            "turnout_deployment_ejections",
            "Consecutive ejections as of the deployment's last ejection (what the next one's "
            "length grows from; the count decays while the deployment stays in rotation).",
            ("deployment",),
            registry,
            mode="livemax",
            state=True,
        )
        self.hedges = Counter(
            "turnout_hedges",
            "Hedged requests: fired, won by the duplicate, won by the first attempt, or failed.",
            ("model_group", "outcome"),
            registry,
        )
        self.stream_failovers = Counter(
            "turnout_stream_failovers",
            "Streams continued on another deployment after breaking, by how and why.",
            ("model_group", "method", "error"),
            registry,
        )
        self.budget_exhausted = Counter(
            "turnout_budget_exhausted",
            "Retries, fallbacks and hedges skipped because their budget was spent.",
            ("model_group", "kind"),
            registry,
        )
        self.poison_requests = Counter(
            "turnout_poison_requests",
            "Requests failed as the cause of the server errors they met on deployments "
            "answering other requests (counted against none of them).",
            ("model_group",),
            registry,
        )
        self.deployment_info = Gauge(
            "turnout_deployment_info",
            "1 for each configured deployment, naming its model group and provider.",
            ("deployment", "model_group", "provider"),
            registry,
            mode="livemax",
        )
        self.state_backend_up = Gauge(
            "turnout_state_backend_up",
            "1 while the state backend serves routing (in-process state always does); 0 while a "
            "shared backend (Redis) is unreachable and this process routes on its own state.",
            ("backend",),
            registry,
            # Across workers: 0 while any live worker routes on its own state.
            mode="livemin",
        )
        #: The spend-log writer's series (`turnout.governance.spend_writer`).
        self.spend_log = SpendLogSeries(registry)
        #: Where runtime state lives, asked at each scrape (`state_source`).
        self._state_status: Callable[[], Mapping[str, Any]] | None = None
        self._attempts: dict[tuple[str, str], _AttemptSeries] = {}
        self._gauges: dict[str, _DeploymentGauges] = {}
        self._requests: dict[tuple[str, str], _RequestSeries] = {}
        self._ttft: dict[str, Buckets] = {}
        self._fallbacks: dict[tuple[str, str, str], Value] = {}
        self._retries: dict[tuple[str, FailureKind], Value] = {}
        self._cooldowns: dict[tuple[str, str], Value] = {}
        self._transitions: dict[tuple[str, BreakerPhase], Value] = {}
        #: Rarer series (hedges, failovers, budgets), by their label values.
        self._rare: dict[tuple[object, ...], Value] = {}
        #: The GenAI client histograms of the OpenTelemetry conventions, per attempt.
        self.genai = GenAiSeries(registry)
        #: Deployment id -> (model group, provider), as last configured.
        self._configured: dict[str, tuple[str, str]] = {}
        #: Ids removed by `deployments`: a late event for one does not bring its gauges back.
        self._retired: set[str] = set()

    # -- the server's calls ------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for ``GET /metrics``."""
        if self._state_status is not None:
            status = self._state_status()
            up = status.get("shared", True) or status.get("backend") == "memory"
            self.state_backend_up.labels(status.get("backend", "memory")).set(1.0 if up else 0.0)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def state_source(self, status: Callable[[], Mapping[str, Any]]) -> None:
        """Where to ask, at each scrape, whether the state backend is up (the router's
        ``state_status``)."""
        self._state_status = status

    def deployments(self, deployments: Iterable[tuple[str, str, str]]) -> None:
        """Set the configured deployments: (id, model group, provider) for each.

        New deployments get their gauges at 0 (and keep them across reloads while they stay);
        removed ones lose their gauges. Counters keep their totals.
        """
        configured = {
            deployment_id: (group, provider) for deployment_id, group, provider in deployments
        }
        for deployment_id, labels in self._configured.items():
            if configured.get(deployment_id) != labels:
                self.deployment_info.remove(deployment_id, *labels)
        for deployment_id in list(self._gauges):
            if deployment_id not in configured:
                del self._gauges[deployment_id]
                self.in_flight.remove(deployment_id)
                self.cooling_down.remove(deployment_id)
                self.breaker_state.remove(deployment_id)
                self.ejections.remove(deployment_id)
                self._retired.add(deployment_id)
        for deployment_id, (group, provider) in configured.items():
            self._retired.discard(deployment_id)
            self._deployment_gauges(deployment_id)
            self.deployment_info.labels(deployment_id, group, provider).set(1)
        self._configured = configured

    # -- the router's events -----------------------------------------------------------------

    def _count(self, metric: Counter, *labels: str) -> None:
        key = (id(metric), *labels)
        counter = self._rare.get(key)
        if counter is None:
            counter = self._rare[key] = metric.labels(*labels)
        counter.inc()

    def on_event(self, event: Event) -> None:
        """Record one event; events of any other type are ignored."""
        # The events of every request first: each case is a type check.
        match event:
            case AttemptFinished():
                self._attempt_finished(event)
            case AttemptStarted():
                gauges = self._deployment_gauges(event.deployment_id)
                if gauges is not None:
                    gauges.running += 1
                    gauges.in_flight.inc()
            case HttpRequestFinished():
                self._request_finished(event)
            case RequestStarted() | RequestFinished():
                return
            case HedgeFired():
                self._count(self.hedges, event.model_group, "fired")
            case HedgeSettled():
                if event.winner is None:
                    outcome = "failed"
                else:
                    outcome = "hedge_won" if event.hedge_won else "primary_won"
                self._count(self.hedges, event.model_group, outcome)
            case StreamFailover():
                self._count(
                    self.stream_failovers, event.model_group, event.method, event.error.value
                )
            case BudgetExhausted():
                self._count(self.budget_exhausted, event.model_group, event.kind)
            case PoisonRequest():
                self._count(self.poison_requests, event.model_group)
            case RetryScheduled():
                key = (event.model_group, event.error)
                counter = self._retries.get(key)
                if counter is None:
                    counter = self._retries[key] = self.retries.labels(
                        event.model_group, event.error.value
                    )
                counter.inc()
            case FallbackTaken():
                fallback = (event.from_group, event.to_group, event.kind.value)
                counter = self._fallbacks.get(fallback)
                if counter is None:
                    counter = self._fallbacks[fallback] = self.fallbacks.labels(*fallback)
                counter.inc()
            case CooldownEntered():
                cooldown = (event.deployment_id, event.reason.value)
                counter = self._cooldowns.get(cooldown)
                if counter is None:
                    counter = self._cooldowns[cooldown] = self.cooldowns.labels(*cooldown)
                counter.inc()
                gauges = self._deployment_gauges(event.deployment_id)
                if gauges is not None:
                    gauges.cooling.set(1)
                    gauges.ejections.set(event.ejections)
            case CooldownLeft():
                gauges = self._deployment_gauges(event.deployment_id)
                if gauges is not None:
                    gauges.cooling.set(0)
            case BreakerTransition():
                transition = (event.deployment_id, event.current)
                counter = self._transitions.get(transition)
                if counter is None:
                    counter = self._transitions[transition] = self.breaker_transitions.labels(
                        event.deployment_id, _PHASE_LABELS[event.current]
                    )
                counter.inc()
                gauges = self._deployment_gauges(event.deployment_id)
                if gauges is not None:
                    gauges.breaker.set(int(event.current))

    def _request_finished(self, event: HttpRequestFinished) -> None:
        """Count one answered request.

        The route is the route's name and the model group a configured group name (or a fixed
        placeholder): never raw caller input, which would make the label set unbounded. The
        time to first token counts only for streams, where it differs from the duration.
        """
        route, model_group, status = event.route, event.model_group, event.status
        series = self._requests.get((route, model_group))
        if series is None:
            series = self._requests[route, model_group] = _RequestSeries(self, route, model_group)
        counter = series.statuses.get(status)
        if counter is None:
            counter = series.statuses[status] = self.requests.labels(route, model_group, status)
        counter.inc()
        series.duration.observe(event.duration)
        if event.stream and event.ttft is not None:
            histogram = self._ttft.get(model_group)
            if histogram is None:
                histogram = self._ttft[model_group] = self.ttft.labels(model_group)
            histogram.observe(event.ttft)

    def _attempt_finished(self, event: AttemptFinished) -> None:
        self.genai.observe(event)
        deployment_id = event.deployment_id
        key = (event.model_group, deployment_id)
        series = self._attempts.get(key)
        if series is None:
            series = self._attempts[key] = _AttemptSeries(self, *key)
        error = event.error
        counter = series.outcomes.get(error)
        if counter is None:
            outcome = "success" if error is None else error.value
            counter = series.outcomes[error] = self.attempts.labels(*key, outcome)
        counter.inc()
        series.duration.observe(event.duration)
        usage = event.usage
        if usage is not None:
            if usage.prompt_tokens > 0:
                series.prompt.inc(usage.prompt_tokens)
            if usage.completion_tokens > 0:
                series.completion.inc(usage.completion_tokens)
        cost = event.cost
        if cost is not None and cost > 0:
            series.cost.inc(cost)
        gauges = self._gauges.get(deployment_id)
        # An attempt that started before its deployment's gauges were (re)made is not counted.
        if gauges is not None and gauges.running > 0:
            gauges.running -= 1
            gauges.in_flight.dec()

    def _deployment_gauges(self, deployment_id: str) -> _DeploymentGauges | None:
        """The deployment's gauges, made at 0 on first use; None once it was removed."""
        gauges = self._gauges.get(deployment_id)
        if gauges is None and deployment_id not in self._retired:
            gauges = self._gauges[deployment_id] = _DeploymentGauges(self, deployment_id)
        return gauges
