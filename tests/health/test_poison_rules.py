"""The state-side rules of held failures (`turnout.health.poison`), on bare records."""

from __future__ import annotations

from turnout.config.router import Deployment, HealthConfig, PoisonRequestConfig, RouterConfig
from turnout.errors import (
    FailureKind,
    ServerError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from turnout.health import poison
from turnout.health.record import BreakerPhase, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome, settle
from turnout.observe.events import CooldownEntered

WALL = 1_800_000_000.0  # the start of a minute
FAILED = Outcome(FailureKind.SERVER_ERROR, 0.1)


def _policy(**poison_config: object) -> HealthPolicy:
    deployment = Deployment(model_name="g", model="m", id="d")
    health = HealthConfig(poison_requests=PoisonRequestConfig(**poison_config))  # type: ignore[arg-type]
    return HealthPolicy.for_deployment(
        deployment, RouterConfig(model_list=(deployment,), health=health)
    )


def _served(state: DeploymentState, policy: HealthPolicy, count: int, now: float = 1.0) -> None:
    for _ in range(count):
        state.in_flight += 1
        settle(state, Outcome(None, 0.1), policy, now, WALL + now)


def _hold(state: DeploymentState, policy: HealthPolicy, now: float = 2.0) -> int:
    state.in_flight += 1
    return poison.hold(state, FAILED, policy, now, WALL + now)


def _fail(state: DeploymentState, policy: HealthPolicy, now: float = 2.0) -> list[object]:
    state.in_flight += 1
    return list(settle(state, FAILED, policy, now, WALL + now))


def _unexplained(state: DeploymentState) -> list[int]:
    return sorted(state.dropped or ())


def test_only_server_errors_a_request_can_cause_are_suspect() -> None:
    assert poison.suspect(ServerError("boom", status=500))
    assert poison.suspect(ServerError("the provider failed: KeyError"))
    for status in (502, 503, 504, 529):
        assert not poison.suspect(ServerError("busy", status=status))
    assert not poison.suspect(UpstreamConnectionError("reset"))
    assert not poison.suspect(UpstreamTimeoutError("slow"))


def test_a_failure_is_held_on_a_deployment_answering_others_or_idle() -> None:
    policy = _policy()
    state = DeploymentState("d")
    _served(state, policy, 3)
    token = _hold(state, policy)
    assert token
    assert state.failures == 0 and state.in_flight == 0
    assert poison.still_held(state, token)
    assert poison.answering(state, 60.0, 2.0)
    # Idle (no success lately, no failure counted): no evidence against the request either.
    idle = DeploymentState("d")
    assert _hold(idle, policy)
    assert not poison.answering(idle, 60.0, 2.0)
    # No success lately and a failure counted since: it is failing, not the request.
    failing = DeploymentState("d")
    _served(failing, policy, 1, now=0.0)
    _fail(failing, policy, now=70.0)
    assert poison.hold(failing, FAILED, policy, 71.0, WALL + 71.0) == 0
    assert _hold(state, _policy(enabled=False)) == 0
    probe = Outcome(FailureKind.SERVER_ERROR, 0.1, probe=True)
    assert poison.hold(state, probe, policy, 2.0, WALL + 2.0) == 0
    state.phase = BreakerPhase.HALF_OPEN
    assert _hold(state, policy) == 0


def test_a_verdict_counts_or_drops_the_held_failure() -> None:
    policy = _policy()
    state = DeploymentState("d")
    _served(state, policy, 5)
    counted = _hold(state, policy)
    assert poison.resolve(state, counted, True, policy, 3.0, WALL + 3.0) == []
    assert (state.failures, state.consecutive_failures, state.streak) == (1, 1, 1)
    _served(state, policy, 1)
    dropped = _hold(state, policy)
    poison.resolve(state, dropped, False, policy, 3.0, WALL + 3.0)
    assert state.failures == 1
    assert state.held is None


def test_a_held_failure_confirmed_after_a_success_counts_towards_the_rate_only() -> None:
    policy = _policy()
    state = DeploymentState("d")
    _served(state, policy, 5)
    token = _hold(state, policy)
    _served(state, policy, 1, now=2.5)
    poison.resolve(state, token, True, policy, 3.0, WALL + 3.0)
    assert (state.failures, state.consecutive_failures, state.streak) == (1, 0, 0)


def test_another_failure_counts_the_held_ones_first() -> None:
    policy = _policy()
    state = DeploymentState("d")
    _served(state, policy, 5)
    first = _hold(state, policy)
    second = _hold(state, policy)
    poison.resolve(state, second, False, policy, 2.0, WALL + 2.0)  # its request was the cause
    state.in_flight += 1
    settle(state, Outcome(FailureKind.CONNECTION, 0.1), policy, 2.0, WALL + 2.0)
    assert state.consecutive_failures == 3  # both held failures, then this one
    assert not poison.still_held(state, first)
    assert poison.resolve(state, first, True, policy, 3.0, WALL + 3.0) == []  # counted once
    assert state.failures == 3


def test_the_failure_that_would_take_the_deployment_out_counts_every_held_one() -> None:
    policy = _policy()
    state = DeploymentState("d")
    _served(state, policy, 5)
    tokens = [_hold(state, policy) for _ in range(3)]
    assert all(tokens)
    # A fourth consecutive failure is past allowed_fails (3): the same failure as ever trips it.
    assert poison.hold(state, FAILED, policy, 2.0, WALL + 2.0) == 0
    events = _fail(state, policy)
    assert [type(e) for e in events].count(CooldownEntered) == 1
    assert state.consecutive_failures == 4
    assert not any(poison.still_held(state, token) for token in tokens)


def test_a_dropped_failure_stays_unexplained_until_a_deployment_of_its_verdict_serves() -> None:
    policy = _policy()
    state, other = DeploymentState("d"), DeploymentState("o")
    _served(state, policy, 5)
    _served(other, policy, 5)
    token = _hold(state, policy)
    marks = (("d", state.served), ("o", other.served))
    poison.drop(state, token, marks)
    assert state.held is None and state.dropped == {token: marks}
    served = {"d": state, "o": other}

    def count(deployment_id: str) -> int | None:
        found = served.get(deployment_id)
        return found.served if found is not None else None

    poison.explain(state, count)
    assert state.held_streak == [token]  # nothing served since: still unexplained
    assert _hold(state, policy) == poison.FAILING
    served.pop("o")
    poison.explain(state, count)  # a deployment it cannot read explains nothing
    assert state.dropped == {token: marks}
    served["o"] = other
    _served(other, policy, 1, now=2.5)
    poison.explain(state, count)
    assert _unexplained(state) == [] and not state.held_streak
    assert _hold(state, policy) > 0


def test_a_success_or_a_counted_streak_forgets_the_dropped_failures() -> None:
    policy = _policy()
    state = DeploymentState("d")
    _served(state, policy, 5)
    poison.drop(state, _hold(state, policy), (("d", state.served),))
    _served(state, policy, 1, now=2.5)
    assert state.dropped is None and state.held_streak is None
    poison.drop(state, _hold(state, policy, now=3.0), (("d", state.served),))
    _fail(state, policy, now=3.5)
    assert state.dropped is None and state.held_streak is None
    assert state.consecutive_failures == 2  # the dropped one, then this one
    # A hold that a later failure already counted, or a success ended the streak of, leaves
    # nothing to explain.
    token = _hold(state, policy, now=4.0)
    _served(state, policy, 1, now=4.5)
    poison.drop(state, token, (("d", state.served),))
    assert state.dropped is None
