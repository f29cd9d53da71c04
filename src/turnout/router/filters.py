"""Pre-filters: which deployments of a group may take this request right now.

Run before any strategy, in one pass over the group: not already tried by this request, able to
honour the request's parameters (`turnout.providers.capabilities`: ``n`` > 1, ``logprobs``,
``seed``, JSON mode ... as its provider declares), not ejected (a probing deployment admits
while probe slots are free), under its rpm, tpm and parallel-request limits and under the quota
its provider last reported, a context window large enough for the estimated prompt, and
carrying one of the request's tags when it has any.
When nothing passes, `Rejections` explains why, to the caller, in one error: when the only
reason was a parameter no deployment can honour, an `UnsupportedParameterError` naming it, which
the router takes on to the general fallback list (sending nothing, so spending no retry budget)
and which reaches the caller as a 400 only when nothing in the fallback chain can honour it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

from turnout.config.router import BreakerConfig, Deployment
from turnout.errors import (
    ContextWindowExceededError,
    DeploymentsCredentialsRefusedError,
    DeploymentsMisconfiguredError,
    NoDeploymentsAvailableError,
    NoMatchingDeploymentError,
    TurnoutError,
    UnsupportedParameterError,
)
from turnout.health.record import CooldownReason
from turnout.health.snapshot import DeploymentSnapshot
from turnout.providers.capabilities import Feature, Lacking, needs_of
from turnout.wire import Request

#: The tag that marks deployments serving requests whose tags match no deployment.
DEFAULT_TAG = "default"


class Rejections:
    """Why deployments were left out, collected only as far as an error message needs."""

    __slots__ = (
        "breaker_open",
        "context",
        "cooling",
        "expired",
        "incapable",
        "limited",
        "tried",
        "worth_waiting",
    )

    def __init__(self) -> None:
        #: (deployment id, reason, seconds left)
        self.cooling: list[tuple[str, CooldownReason | None, float]] = []
        #: Seconds until each cooling deployment whose return a caller's repeat could use comes
        #: back: a cooldown with a fixed end (a rate limit, an operator's), or a first ejection
        #: (a blip). A deployment ejected again and again, a refused key or a missing model is
        #: not worth a caller's wait: its return is only a probe that will likely fail.
        self.worth_waiting: list[float] = []
        #: (deployment id, seconds until probes are admitted; 0: probing, its slots taken)
        self.breaker_open: list[tuple[str, float]] = []
        #: (deployment id, which limit)
        self.limited: list[tuple[str, str]] = []
        #: (deployment id, its context window)
        self.context: list[tuple[str, int]] = []
        #: (deployment, a feature of the request it cannot honour)
        self.incapable: list[tuple[Deployment, Feature]] = []
        self.tried = 0
        #: Deployments whose ejection has run out: they move to probing.
        self.expired: list[str] = []

    def wait_hint(self) -> float | None:
        """Seconds until the first cooling or breaker-open deployment may be tried again."""
        waits = [left for _, _, left in self.cooling] + [left for _, left in self.breaker_open]
        return min(waits) if waits else None

    def error(self, group: str, request: Request, wall: float) -> TurnoutError:
        """The error that best explains an empty candidate list (`wall`: the time now)."""
        if self.incapable and not (
            self.cooling or self.breaker_open or self.limited or self.context or self.tried
        ):
            return self._unsupported(group)
        if self.context and not (self.cooling or self.breaker_open or self.limited):
            largest = max(window for _, window in self.context)
            return ContextWindowExceededError(
                f"The prompt (about {request.prompt_tokens} tokens) exceeds the context window "
                f"of every deployment of `{group}` (largest: {largest} tokens)",
                param="messages",
            )
        if self.cooling and not (self.breaker_open or self.limited or self.context):
            misconfigured = _misconfigured(self.cooling, group)
            if misconfigured is not None:
                return misconfigured
        parts = [
            f"{d} cooling down ({reason or 'manual'}) for {left:.1f}s more, "
            f"until {_utc(wall + left)}"
            for d, reason, left in self.cooling
        ]
        parts += [
            f"{d} circuit open, probing in {left:.1f}s"
            if left
            else f"{d} probing, its probe slots taken"
            for d, left in self.breaker_open
        ]
        parts += [f"{d} at its {limit} limit" for d, limit in self.limited]
        parts += [f"{d} context window {w} too small" for d, w in self.context]
        parts += [f"{d.id} cannot honour {f.described}" for d, f in self.incapable]
        detail = "; ".join(parts) if parts else "every deployment was already tried"
        rate_limited = bool(self.limited) or any(
            reason is CooldownReason.RATE_LIMITED for _, reason, _ in self.cooling
        )
        return NoDeploymentsAvailableError(
            f"No deployments available for model `{group}`: {detail}",
            retry_after=self.wait_hint(),
            rate_limited=rate_limited,
            cooling_left=min(self.worth_waiting, default=None),
        )

    def _unsupported(self, group: str) -> UnsupportedParameterError:
        """No deployment of the group can honour a parameter: which, and why not."""
        feature = self.incapable[0][1]
        limits = [
            f"`{group}` on {d.provider} (`{d.model}`) does not support {f.described}"
            for d, f in self.incapable
        ]
        return UnsupportedParameterError(
            f"No deployment of `{group}` can honour {feature.described}: " + "; ".join(limits),
            param=feature.param,
            limits=limits,
        )


#: Cooldowns whose end does not fix what caused them: a refused key, a missing model.
_NOT_SOON = frozenset({CooldownReason.AUTHENTICATION, CooldownReason.NOT_FOUND})
#: Cooldowns that end when they were said to, with no probe: a provider's Retry-After, an
#: operator's.
_FIXED_END = frozenset({CooldownReason.RATE_LIMITED, CooldownReason.MANUAL})


def _misconfigured(
    cooling: list[tuple[str, CooldownReason | None, float]], group: str
) -> DeploymentsMisconfiguredError | None:
    """When every deployment is out because its provider refused the gateway's key or does
    not know its model, the error that says so (a 502, as the attempt that put it out was)."""
    if any(reason not in _NOT_SOON for _, reason, _ in cooling):
        return None
    refused = [d for d, reason, _ in cooling if reason is CooldownReason.AUTHENTICATION]
    unknown = [d for d, reason, _ in cooling if reason is CooldownReason.NOT_FOUND]
    causes = []
    if refused:
        causes.append(f"the provider refused the gateway's credentials for {_names(refused)}")
    if unknown:
        causes.append(f"the provider does not know the model configured for {_names(unknown)}")
    error = DeploymentsCredentialsRefusedError if refused else DeploymentsMisconfiguredError
    return error(
        f"No deployments available for model `{group}`: {'; '.join(causes)} (the gateway's "
        "configuration needs fixing; they are tried again after their cooldown)"
    )


def _names(ids: list[str]) -> str:
    return ", ".join(f"`{d}`" for d in ids)


def _utc(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%H:%M:%S UTC")


def eligible(
    deployments: Sequence[Deployment],
    states: Sequence[DeploymentSnapshot],
    request: Request,
    breaker: BreakerConfig,
    now: float,
    wall: float,
    tried: Collection[str],
    rejections: Rejections,
    lacks: Mapping[str, Lacking] | None = None,
) -> tuple[list[Deployment], list[DeploymentSnapshot]]:
    """The deployments that may serve `request` now, with their states, in group order.

    This runs on every routing decision, so the common case (nothing cooling, circuit closed,
    under every limit) costs a handful of attribute reads per deployment, and the prompt size
    is estimated only if some deployment has a limit that needs it. `lacks` (the model table's)
    maps a deployment id to the request features it cannot honour; the request's own features
    are read only when some deployment lacks one, and then with one set test when it uses none.
    A deployment that would drop what it lacks (``drop_params``) is chosen only when no
    deployment that honours the request is.
    """
    tags = request.tags
    if tags:
        deployments, states = _tagged(deployments, states, tags)
    needs = needs_of(request.body) if lacks else None
    minute = int(wall // 60)
    prompt = -1
    chosen: list[Deployment] = []
    chosen_states: list[DeploymentSnapshot] = []
    #: Deployments that would drop a parameter of the request: the last resort.
    dropping: list[tuple[Deployment, DeploymentSnapshot]] = []
    for deployment, state in zip(deployments, states, strict=True):
        if tried and deployment.id in tried:
            rejections.tried += 1
            continue
        drops = False
        if needs and lacks:
            lacking = lacks.get(deployment.id)
            if lacking is not None and not needs.isdisjoint(lacking.features):
                if not lacking.dropped:
                    rejections.incapable.append((deployment, min(needs & lacking.features)))
                    continue
                drops = True
        if state.phase:
            until = state.cooldown_until
            if until > now:
                reason = state.cooldown_reason
                if reason is CooldownReason.CONSECUTIVE_FAILURES:
                    rejections.breaker_open.append((deployment.id, until - now))
                else:
                    rejections.cooling.append((deployment.id, reason, until - now))
                    if reason in _FIXED_END or (state.ejections <= 1 and reason not in _NOT_SOON):
                        rejections.worth_waiting.append(until - now)
                continue
            if until:
                rejections.expired.append(deployment.id)  # probing, no probe in flight yet
            elif state.probes >= breaker.half_open_probes:
                rejections.breaker_open.append((deployment.id, 0.0))
                continue
        parallel = deployment.max_parallel_requests
        if parallel is not None and state.in_flight >= parallel:
            rejections.limited.append((deployment.id, "max parallel requests"))
            continue
        rpm = deployment.rpm
        if rpm is not None and state.minute == minute and state.rpm_used >= rpm:
            rejections.limited.append((deployment.id, "rpm"))
            continue
        tpm = deployment.tpm
        window = deployment.context_window
        if tpm is not None or window is not None or state.hint_expires > wall:
            if prompt < 0:
                prompt = request.prompt_tokens
            if tpm is not None:
                used = state.tpm_used if state.minute == minute else 0
                if used + prompt > tpm:
                    rejections.limited.append((deployment.id, "tpm"))
                    continue
            if state.hint_expires > wall:
                quota = _reported_quota_exhausted(state, prompt)
                if quota is not None:
                    rejections.limited.append((deployment.id, quota))
                    continue
            if window is not None and prompt > window:
                rejections.context.append((deployment.id, window))
                continue
        if drops:
            dropping.append((deployment, state))
            continue
        chosen.append(deployment)
        chosen_states.append(state)
    if dropping and not chosen:
        return [d for d, _ in dropping], [s for _, s in dropping]
    return chosen, chosen_states


def _reported_quota_exhausted(state: DeploymentSnapshot, prompt: int) -> str | None:
    """Which quota the provider said is used up (valid while its hint has not expired)."""
    if state.remaining_requests == 0:
        return "provider-reported request quota"
    remaining = state.remaining_tokens
    if remaining is not None and remaining < prompt:
        return "provider-reported token quota"
    return None


def _tagged(
    deployments: Sequence[Deployment],
    states: Sequence[DeploymentSnapshot],
    tags: frozenset[str],
) -> tuple[list[Deployment], list[DeploymentSnapshot]]:
    """Deployments sharing a tag with the request; else those tagged `default`."""
    for wanted in (tags, frozenset({DEFAULT_TAG})):
        pairs = [(d, s) for d, s in zip(deployments, states, strict=True) if d.tags & wanted]
        if pairs:
            return [d for d, _ in pairs], [s for _, s in pairs]
    group = deployments[0].model_name if deployments else "?"
    raise NoMatchingDeploymentError(
        f"No deployment of `{group}` carries any of the tags {sorted(tags)} "
        f"(and none is tagged `{DEFAULT_TAG}`)",
        param="tags",
    )
