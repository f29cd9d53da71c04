"""The router's configuration: frozen typed structs, validated once.

`RouterConfig` is the one object a `Router` takes. Everything is checked when the object is built
(directly in Python or by `parse_router_config` from plain data such as parsed YAML), and a bad
value is reported with the exact path of the field: ``$.model_list[2].weight: Expected `float`,
got `str```. No module-level settings exist; two routers in one process share nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta, Struct, field
from msgspec.structs import force_setattr

from turnout.config.decoding import decode_secret, split_validation_error
from turnout.config.providers import Settings, resolve_settings
from turnout.config.state import StateConfig
from turnout.config.urls import check_base_url
from turnout.errors import ConfigError
from turnout.secrets import Secret, masked

NonNegative = Annotated[float, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
Fraction = Annotated[float, Meta(ge=0, le=1)]


class Timeouts(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-deployment time limits of each attempt, in seconds (None: no limit of that kind).

    Each bounds one attempt on this deployment, never the whole request (that is
    `RouterConfig.timeout`): an attempt that runs out of one fails with a timeout, is not tried
    on this deployment again for the request, and the request moves on to another deployment or
    a fallback. LiteLLM's ``timeout`` and ``stream_timeout`` are these limits.
    """

    #: One whole attempt answered whole, from sending the request to the last byte (for a
    #: stream: its first chunk, unless `first_token` is set).
    request: Positive | None = None
    #: Opening the connection to the upstream.
    connect: Positive | None = None
    #: From sending a streaming request to its first chunk.
    first_token: Positive | None = None
    #: Between two chunks of a stream.
    idle: Positive | None = None


class Deployment(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One upstream endpoint serving one model, as a member of a model group."""

    #: The model group (public model name) this deployment serves.
    model_name: str
    #: The upstream model name, as the provider knows it.
    model: str
    #: Which provider speaks to it (a key of the router's provider registry).
    provider: str = "openai"
    #: Stable identity; derived from the parameters below when not given.
    id: str = ""
    #: How logs, headers, traces and the status page name it: given, else the id when one was
    #: given, else ``{model_name}/{provider}/{model}`` (made unique within a config with ``#2``,
    #: ``#3``...). Never only a hash: an operator reads it.
    name: str = ""
    #: The provider's endpoint: http(s)://host[:port][/path], no credentials, query or fragment.
    base_url: str | None = None
    api_key: Secret | None = None
    api_version: str | None = None
    #: Relative share for weighted random picking.
    weight: NonNegative | None = None
    #: Priority tier: lower is tried first.
    priority: int = 0
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    max_parallel_requests: PositiveInt | None = None
    input_cost_per_token: NonNegative | None = None
    output_cost_per_token: NonNegative | None = None
    #: Price of prompt tokens served from the provider's prompt cache (default: the input price).
    cached_input_cost_per_token: NonNegative | None = None
    #: Largest prompt, in tokens, the model accepts.
    context_window: PositiveInt | None = None
    tags: frozenset[str] = frozenset()
    #: Seconds a failing deployment stays out of rotation (None: the router default; 0: never).
    cooldown_time: NonNegative | None = None
    timeouts: Timeouts = Timeouts()
    #: Drop request parameters this provider cannot honour instead of answering 400.
    drop_params: bool = False
    #: Request parameters (names of `CAPABILITY_PARAMS`) this deployment cannot honour, beyond
    #: what its provider declares for the model: the router sends it no request using them.
    unsupported_params: frozenset[str] = frozenset()
    #: Request parameters this deployment honours although its provider's declaration for the
    #: model says otherwise (a newer model, a compatible server that has them).
    supported_params: frozenset[str] = frozenset()
    #: Defaults for the request's own fields (temperature, max_tokens, ...): the caller's
    #: values win. Given with the provider's settings mixed in (as config files write them),
    #: it keeps only the defaults once built; the settings move to `settings`.
    params: dict[str, Any] = field(default_factory=dict)
    #: The provider family's settings (credentials, region, extra headers and body...), typed
    #: and checked at load (see `turnout.config.providers`). Never None once built.
    settings: Settings | None = None

    def __post_init__(self) -> None:
        if not self.model_name:
            raise ConfigError("model_name must not be empty")
        if not self.model:
            raise ConfigError("model must not be empty")
        if self.base_url:
            check_base_url(self.base_url)
        for name in ("unsupported_params", "supported_params"):
            unknown = sorted(set(getattr(self, name)) - set(CAPABILITY_PARAMS))
            if unknown:
                raise ConfigError(
                    f"{name}: unknown parameter(s) {', '.join(map(repr, unknown))}; known: "
                    + ", ".join(CAPABILITY_PARAMS)
                )
        if not self.name:
            name = self.id or f"{self.model_name}/{self.provider}/{self.model}"
            msgspec.structs.force_setattr(self, "name", name)
        if not self.id:
            # From the params as given, settings included: the ids of existing configs stay.
            msgspec.structs.force_setattr(self, "id", derive_deployment_id(self))
        params, settings = resolve_settings(self.provider, self.params, self.settings)
        msgspec.structs.force_setattr(self, "params", params)
        msgspec.structs.force_setattr(self, "settings", settings)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"Deployment({shown})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # A request default under a credential's name (``params.api_key``...) is masked too.
        return [
            (name, masked(value) if name == "params" else value)
            for name in self.__struct_fields__
            for value in (getattr(self, name),)
        ]


#: The request parameters a deployment's `unsupported_params`/`supported_params` may name. The
#: config layer owns the names so that it can check them at load; the router's capability
#: pre-filter (`turnout.providers.capabilities`) maps each to what it means (a test holds the
#: two together). ``response_format`` stands for both JSON kinds, ``presence_penalty`` and
#: ``frequency_penalty`` for both penalties.
CAPABILITY_PARAMS: tuple[str, ...] = (
    "n",
    "logprobs",
    "top_logprobs",
    "seed",
    "metadata",
    "response_format",
    "response_format.json_object",
    "response_format.json_schema",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
    "tools",
)


def unique_names(deployments: Sequence[Deployment]) -> None:
    """Make the deployments' names unique, in order: a name met again gets ``#2``, ``#3``...
    (two deployments of one model at two endpoints share their derived name)."""
    taken = {deployment.name for deployment in deployments}
    seen: set[str] = set()
    for deployment in deployments:
        name = deployment.name
        if name in seen:
            number = 2
            while f"{name}#{number}" in taken:
                number += 1
            name = f"{name}#{number}"
            taken.add(name)
            msgspec.structs.force_setattr(deployment, "name", name)
        seen.add(name)


def derive_deployment_id(deployment: Deployment) -> str:
    """A stable id from what makes a deployment distinct (a key enters only as a digest).

    The params enter as a config gives them, provider settings included (settings given in code
    enter as the params that would give them), so that a deployment keeps its id whichever way
    its settings were written.
    """
    params = deployment.params
    if deployment.settings is not None:
        params = {**params, **deployment.settings.given()}
    identity = {
        "model_name": deployment.model_name,
        "provider": deployment.provider,
        "model": deployment.model,
        "base_url": deployment.base_url,
        "api_version": deployment.api_version,
        "key": deployment.api_key.fingerprint() if deployment.api_key else None,
        "params": params,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class HybridWeights(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the hybrid strategy weighs cost, latency and reliability."""

    cost: NonNegative = 0.4
    latency: NonNegative = 0.4
    reliability: NonNegative = 0.2

    def __post_init__(self) -> None:
        if self.cost + self.latency + self.reliability <= 0:
            raise ConfigError("hybrid weights must not all be zero")


#: The routing strategies a config may name. The config layer owns the names so that it can check
#: them at load without importing the router; the router's registry implements exactly these (a
#: test holds the two together).
STRATEGY_NAMES: tuple[str, ...] = (
    "weighted-random",
    "round-robin",
    "least-busy",
    "lowest-latency",
    "lowest-cost",
    "usage-based",
    "priority",
    "rate-limit-aware",
    "hybrid",
)

#: LiteLLM's ``routing_strategy`` names, accepted as aliases. Its ``least-busy`` is already one of
#: turnout's names.
STRATEGY_ALIASES: dict[str, str] = {
    "simple-shuffle": "weighted-random",
    "latency-based-routing": "lowest-latency",
    "cost-based-routing": "lowest-cost",
    "usage-based-routing": "usage-based",
    "usage-based-routing-v2": "usage-based",
}


class RoutingConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which strategy picks among healthy candidates, and its knobs."""

    strategy: str = "weighted-random"
    #: lowest-latency: pick at random among deployments within this fraction of the best.
    latency_buffer: NonNegative = 0.0
    hybrid: HybridWeights = HybridWeights()
    #: Completion tokens assumed for cost estimates when the request sets no max_tokens.
    default_completion_tokens: PositiveInt = 256
    #: Smoothing factor of latency and time-to-first-token averages (weight of the newest).
    latency_ewma_alpha: Annotated[float, Meta(gt=0, le=1)] = 0.3

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGY_NAMES and self.strategy not in STRATEGY_ALIASES:
            known = ", ".join(sorted([*STRATEGY_NAMES, *STRATEGY_ALIASES]))
            raise ConfigError(f"unknown strategy {self.strategy!r}; known: {known}")


class RetryBudgetConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A router-wide cap on retries and fallback hops, as a share of requests.

    Like gRPC's retry throttling: during an outage retries could multiply the load on the
    providers still up; past the budget a failed attempt is reported instead of retried.
    """

    enabled: bool = True
    #: Retries allowed per request, on average over the window.
    ratio: Fraction = 0.2
    #: Retries always allowed per second, however few the requests.
    min_per_second: NonNegative = 1.0
    #: Seconds over which requests and retries are counted.
    window: Positive = 10.0


class RetryConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Retries within a model group: exponential backoff with full jitter."""

    num_retries: Annotated[int, Meta(ge=0)] = 2
    #: First backoff ceiling; each retry doubles it, up to max_delay.
    base_delay: NonNegative = 0.25
    max_delay: NonNegative = 8.0
    #: Never wait longer than this for a provider's Retry-After; fail (or fall back) instead.
    max_retry_after: NonNegative = 60.0
    budget: RetryBudgetConfig = RetryBudgetConfig()


class HedgeConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Hedged requests for a model group: a duplicate on another deployment for the slow tail.

    When the first attempt has produced no answer (or, for a stream, no first token) after the
    hedge delay, one duplicate starts on a different healthy deployment; the first to deliver
    wins and the other is cancelled. The delay is fixed, or a quantile of the group's observed
    times, so that hedging fires only in the tail.
    """

    #: Fixed delay in seconds (give this or `quantile`).
    delay: Positive | None = None
    #: Delay as this quantile of the group's recent latencies (streams: times to first token).
    quantile: Annotated[float, Meta(gt=0, lt=1)] | None = None
    #: Samples needed before a quantile delay is trusted (no hedging until then).
    min_samples: PositiveInt = 20
    #: Duplicates allowed, as a share of the group's requests over the window.
    budget: Fraction = 0.05
    #: Seconds over which requests and hedges are counted.
    window: Positive = 60.0

    def __post_init__(self) -> None:
        if (self.delay is None) == (self.quantile is None):
            raise ConfigError("give exactly one of `delay` and `quantile`")


class FallbackConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where to go when a whole model group fails, by kind of failure.

    Each map goes from a group (or ``*`` for any group) to an ordered list of groups. A kind with
    no entry for a group uses the general list, except content policy: a refusal goes to another
    model only where `content_policy` names one.
    """

    general: dict[str, list[str]] = field(default_factory=dict)
    context_window: dict[str, list[str]] = field(default_factory=dict)
    content_policy: dict[str, list[str]] = field(default_factory=dict)
    rate_limit: dict[str, list[str]] = field(default_factory=dict)
    #: Most fallback hops one request may take.
    max_depth: Annotated[int, Meta(ge=0)] = 5


class PoisonRequestConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Telling a request that breaks every upstream from upstreams that are broken.

    A request whose content makes every upstream answer 500 would otherwise fail on each
    deployment it is retried or fallen back on, and count against each one's health until the
    whole group is out for everyone. A server error on a deployment that answers other requests
    is held until the request's verdict: when the request fails like that on `min_deployments`
    deployments, the request is the cause; it fails at once and counts against none of them.
    """

    enabled: bool = True
    #: Deployments (across fallbacks) that must fail the request with a server error, each while
    #: answering other requests (or idle, with no failure counted), before the request is judged
    #: the cause.
    min_deployments: Annotated[int, Meta(ge=2)] = 2
    #: A deployment counts as answering other requests when it served one within this many
    #: seconds; a verdict needs one such deployment among those that failed the request.
    success_window: Positive = 60.0


class HealthConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a deployment is ejected (taken out of rotation), and for how long.

    One ejection state per deployment: in rotation -> ejected (one reason, one expiry) ->
    probing (``breaker.half_open_probes`` requests at a time) -> back in rotation after
    ``breaker.success_threshold`` successful probes, or ejected again, for longer, on a
    failing probe. The k-th consecutive ejection lasts ``cooldown_time`` for k = 1 and 2 (a
    blip a little longer than one cooldown is not penalised), then ``cooldown_time *
    ejection_multiplier ** (k - 2)``, never more than ``max_cooldown``. Each
    ``ejection_decay`` seconds in rotation takes one off the count. A 429's Retry-After sets
    its ejection to what the provider asked (up to ``max_cooldown``) without growing it.
    """

    #: Seconds of the first ejection (a deployment's own cooldown_time overrides it); 0 turns
    #: off the cooldown triggers (failure kinds, allowed_fails, failure rate).
    cooldown_time: NonNegative = 5.0
    #: Failures in the current minute a deployment is allowed before it is ejected.
    allowed_fails: Annotated[int, Meta(ge=0)] = 3
    #: Requests in the current minute before the failure rules apply.
    min_requests: PositiveInt = 5
    #: Failure rate in the current minute above which a deployment is ejected.
    failure_rate_threshold: Fraction = 0.5
    #: Longest ejection: the cap of the growing ones and of a provider's Retry-After.
    max_cooldown: NonNegative = 300.0
    #: Growth of consecutive ejections (1: every ejection lasts the base time).
    ejection_multiplier: Annotated[float, Meta(ge=1.0)] = 2.0
    #: Seconds in rotation that take one off a deployment's count of consecutive ejections.
    ejection_decay: Positive = 30.0
    #: LiteLLM's switch: no cooldown triggers (the consecutive-failures trigger of `breaker`
    #: stays, unless `breaker.enabled` is false).
    disable_cooldowns: bool = False
    #: Requests that fail on every deployment they reach count against none of them.
    poison_requests: PoisonRequestConfig = PoisonRequestConfig()


class BreakerConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The circuit-breaker side of the ejection policy (see `HealthConfig`): the
    consecutive-failures trigger and probing. There is no second timer: an ejection this
    trigger starts is the deployment's one ejection, on the same schedule as any other.
    """

    #: Whether ``failure_threshold`` consecutive failures eject a deployment.
    enabled: bool = True
    #: Consecutive failures (across minutes, whatever the failure rate) that eject.
    failure_threshold: PositiveInt = 5
    #: Base seconds of the ejections the consecutive-failures trigger starts (unset: the
    #: cooldown time; with cooldowns disabled or 0, 5 s). They grow like every ejection.
    open_timeout: Positive | None = None
    #: Requests let through at once while a deployment is probing.
    half_open_probes: PositiveInt = 1
    #: Successful probes that put a deployment back in rotation.
    success_threshold: PositiveInt = 1


class LimitBounds(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one learned limit is clamped, and what it is before anything was learned (seconds).

    A value left out (or 0) is its kind's default, so ``idle: {cold: 5}`` changes only that.
    """

    #: Never tighter than this, however fast the deployment has been.
    floor: NonNegative = 0.0
    #: Never looser than this, however slow it has been.
    cap: NonNegative = 0.0
    #: The limit while fewer than `LearnedTimeouts.min_samples` successes were seen.
    cold: NonNegative = 0.0

    def __post_init__(self) -> None:
        if self.floor and self.cap and self.cold:
            _check_bounds(self)

    def over(self, defaults: LimitBounds) -> LimitBounds:
        """These bounds, with what they leave out taken from `defaults`."""
        merged = LimitBounds(
            floor=self.floor or defaults.floor,
            cap=self.cap or defaults.cap,
            cold=self.cold or defaults.cold,
        )
        _check_bounds(merged)
        return merged


def _check_bounds(bounds: LimitBounds) -> None:
    if bounds.floor > bounds.cap:
        raise ConfigError(f"floor ({bounds.floor:g}) must not exceed cap ({bounds.cap:g})")
    if not bounds.floor <= bounds.cold <= bounds.cap:
        raise ConfigError(
            f"cold ({bounds.cold:g}) must lie between floor ({bounds.floor:g}) and cap "
            f"({bounds.cap:g})"
        )


#: Each learned limit's defaults (see docs/timeouts.md for the reasoning).
DEFAULT_BOUNDS: Final = {
    "first_token": LimitBounds(floor=5.0, cap=120.0, cold=60.0),
    "idle": LimitBounds(floor=10.0, cap=120.0, cold=30.0),
    "request": LimitBounds(floor=10.0, cap=600.0, cold=120.0),
}


class LearnedTimeouts(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-deployment attempt limits learned from what each deployment has been doing.

    Each limit is the `quantile` of a deployment's recent successful samples times `factor`,
    clamped to its bounds; with fewer than `min_samples` samples it is the bounds' `cold` value.
    It applies only while something else could still answer the request (another deployment of
    the group or a fallback group): then a silent or stalled upstream is left after seconds, not
    at the deadline. An attempt with nowhere else to go waits up to the `cap` instead, so a
    learned limit never fails a request that patience would have answered. A deployment's
    explicit `Timeouts` are upper bounds: a learned limit may be tighter, never looser. See
    docs/timeouts.md for the reasoning behind the defaults.
    """

    enabled: bool = True
    #: Which quantile of the samples is taken.
    quantile: Annotated[float, Meta(gt=0, le=1)] = 0.99
    #: How far past that quantile an attempt may run.
    factor: Annotated[float, Meta(ge=1)] = 3.0
    #: Successful samples needed before the learned value replaces the cold one.
    min_samples: PositiveInt = 10
    #: Samples kept per deployment and kind (the most recent).
    samples: Annotated[int, Meta(ge=8, le=4096)] = 200
    #: Time to a stream's first chunk.
    first_token: LimitBounds = DEFAULT_BOUNDS["first_token"]
    #: The longest gap between two chunks of one stream (learned per stream: its longest gap).
    idle: LimitBounds = DEFAULT_BOUNDS["idle"]
    #: A whole (non-streamed) answer: the quantile of whole-answer durations, or, when the
    #: request sets max_tokens, of seconds per output token times it, whichever is longer.
    request: LimitBounds = DEFAULT_BOUNDS["request"]
    #: When the fallback's own time is unknown, the share of the time left kept for it.
    reserve_fraction: Annotated[float, Meta(ge=0, lt=1)] = 0.4

    def __post_init__(self) -> None:
        for kind, defaults in DEFAULT_BOUNDS.items():
            given: LimitBounds = getattr(self, kind)
            if given is not defaults:
                force_setattr(self, kind, given.over(defaults))


class RouterConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a `Router` needs to know, in one validated object."""

    model_list: tuple[Deployment, ...]
    #: Alternative names for model groups (an alias may name another alias).
    aliases: dict[str, str] = field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()
    retries: RetryConfig = RetryConfig()
    fallbacks: FallbackConfig = FallbackConfig()
    health: HealthConfig = HealthConfig()
    breaker: BreakerConfig = BreakerConfig()
    #: Overall deadline of one request, across every attempt, retry and fallback (seconds); a
    #: deployment's per-attempt limits are its `Timeouts`.
    timeout: Positive = 600.0
    #: Hedged requests by model group (``*``: every group). Off unless configured.
    hedging: dict[str, HedgeConfig] = field(default_factory=dict)
    #: Continue a stream that breaks after content was sent on another deployment.
    stream_failover: bool = True
    #: First-token, idle and whole-answer limits learned per deployment (on by default).
    learned_timeouts: LearnedTimeouts = LearnedTimeouts()
    #: Where runtime state lives: this process (default) or Redis, shared (`config.state`).
    state: StateConfig = StateConfig()

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        for index, deployment in enumerate(self.model_list):
            if deployment.id in seen:
                raise ConfigError(
                    f"duplicate deployment id {deployment.id!r} "
                    f"(also model_list[{seen[deployment.id]}])",
                    path=f"model_list[{index}].id",
                )
            seen[deployment.id] = index
        unique_names(self.model_list)
        groups = {deployment.model_name for deployment in self.model_list}
        check_aliases(self.aliases, groups)
        check_fallbacks(self.fallbacks, groups | set(self.aliases))
        for name in self.hedging:
            if name != "*" and name not in groups:
                raise ConfigError(f"{name!r} is no model group", path=f"hedging.{name}")


def check_fallbacks(fallbacks: FallbackConfig, names: set[str]) -> None:
    """Every fallback source and target must name a model group or alias (``*``: any source)."""
    for kind in ("general", "context_window", "content_policy", "rate_limit"):
        table: dict[str, list[str]] = getattr(fallbacks, kind)
        for source, targets in table.items():
            path = f"fallbacks.{kind}.{source}"
            if source != "*" and source not in names:
                raise ConfigError(f"{source!r} is no model group or alias", path=path)
            for target in targets:
                if target not in names:
                    raise ConfigError(
                        f"fallback target {target!r} is no model group or alias", path=path
                    )


def check_aliases(aliases: Mapping[str, str], groups: set[str]) -> None:
    """Reject alias chains that loop (self-aliases included), shadow a group or end nowhere."""
    for start in aliases:
        chain = [start]
        name = aliases[start]
        while name in aliases:
            if name in chain:
                loop = " -> ".join([*chain[chain.index(name) :], name])
                raise ConfigError(f"alias cycle: {loop}", path=f"aliases.{start}")
            chain.append(name)
            name = aliases[name]
        if start in groups:
            raise ConfigError(
                f"alias {start!r} has the name of a model group", path=f"aliases.{start}"
            )
        if name not in groups:
            raise ConfigError(
                f"alias {start!r} resolves to {name!r}, which is no model group",
                path=f"aliases.{start}",
            )


def parse_router_config(data: Mapping[str, Any]) -> RouterConfig:
    """Build a `RouterConfig` from plain data (parsed YAML or JSON), naming any bad path."""
    try:
        return msgspec.convert(data, RouterConfig, dec_hook=decode_secret, strict=False)
    except msgspec.ValidationError as exc:
        problem, path = split_validation_error(exc)
        raise ConfigError(problem, path=path or None) from None
