"""The capability pre-filter: what it skips, what it keeps as a last resort, what it says."""

from __future__ import annotations

from typing import Any

from turnout import Deployment, Request
from turnout.config.router import BreakerConfig
from turnout.errors import NoDeploymentsAvailableError, UnsupportedParameterError
from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState
from turnout.health.snapshot import snapshot_of
from turnout.providers.capabilities import Feature, Lacking
from turnout.router.filters import Rejections, eligible

WALL = 1_800_000_000.0
NOW = 100.0
BREAKER = BreakerConfig()
CLAUDE = Deployment(model_name="g", provider="anthropic", model="claude-sonnet-4-5", id="claude")
GPT = Deployment(model_name="g", provider="openai", model="gpt-4o", id="gpt")
LACKS = {"claude": Lacking(frozenset({Feature.N, Feature.SEED}), dropped=False)}


def _pick(
    deployments: list[Deployment],
    body: dict[str, Any],
    lacks: dict[str, Lacking],
    states: dict[str, DeploymentState] | None = None,
) -> tuple[list[str], Rejections]:
    states = states or {}
    snapshots = [snapshot_of(states.get(d.id) or DeploymentState(d.id)) for d in deployments]
    rejections = Rejections()
    request = Request(model="g", body={"messages": [], **body})
    chosen, _ = eligible(deployments, snapshots, request, BREAKER, NOW, WALL, (), rejections, lacks)
    return [d.id for d in chosen], rejections


def test_a_request_asking_for_nothing_special_keeps_everyone() -> None:
    assert _pick([CLAUDE, GPT], {"n": 1}, LACKS)[0] == ["claude", "gpt"]


def test_a_deployment_lacking_a_requested_feature_is_skipped() -> None:
    chosen, rejections = _pick([CLAUDE, GPT], {"n": 2}, LACKS)
    assert chosen == ["gpt"]
    assert rejections.incapable == [(CLAUDE, Feature.N)]


def test_nothing_capable_is_a_400_naming_the_parameter_and_the_provider() -> None:
    chosen, rejections = _pick([CLAUDE], {"seed": 1}, LACKS)
    assert chosen == []
    error = rejections.error("g", Request(model="g", body={}), WALL)
    assert isinstance(error, UnsupportedParameterError)
    assert error.param == "seed" and error.status == 400
    assert "anthropic (`claude-sonnet-4-5`)" in error.public_message()
    assert error.retryable  # it goes on to the fallbacks


def test_a_capable_deployment_cooling_down_makes_it_a_wait_not_a_400() -> None:
    cooling = DeploymentState("gpt")
    cooling.cooldown_until, cooling.cooldown_reason = NOW + 5, CooldownReason.RATE_LIMITED
    cooling.phase = BreakerPhase.OPEN
    chosen, rejections = _pick([CLAUDE, GPT], {"n": 2}, LACKS, {"gpt": cooling})
    assert chosen == []
    error = rejections.error("g", Request(model="g", body={}), WALL)
    assert isinstance(error, NoDeploymentsAvailableError)
    assert "claude cannot honour several choices" in error.message


def test_a_deployment_that_drops_is_the_last_resort() -> None:
    dropping = {"claude": Lacking(LACKS["claude"].features, dropped=True)}
    assert _pick([CLAUDE, GPT], {"n": 2}, dropping)[0] == ["gpt"]
    broken = DeploymentState("gpt")
    broken.cooldown_until, broken.cooldown_reason = NOW + 5, CooldownReason.FAILURES
    broken.phase = BreakerPhase.OPEN
    assert _pick([CLAUDE, GPT], {"n": 2}, dropping, {"gpt": broken})[0] == ["claude"]
